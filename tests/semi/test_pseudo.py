"""Pseudo-labels: the keep/reject decision names the check that failed, labels round-trip through the
psfhs-dev layout, and scans shown mirrored are stored in the usual display."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
from _helpers import SAMPLE_IMAGES

from partus.data.records import load_psfhs
from partus.data.unlabelled import Scan
from partus.geometry import angle_of_progression
from partus.predict import Predictor
from partus.pseudo import PseudoFilter, anatomy_reason, pseudo_label, write_pseudo_labels

SAMPLES = SAMPLE_IMAGES.parent


@pytest.fixture(scope="module")
def records():
    return load_psfhs(SAMPLES)


@pytest.fixture(scope="module")
def predictor():
    return Predictor()


@pytest.fixture(scope="module")
def labelled(records, predictor):
    scans = [Scan(r.name, r.image, r.name) for r in records]
    scans.append(Scan("mirrored", np.ascontiguousarray(records[0].image[:, ::-1]), "m"))
    scans.append(Scan("noise", np.random.default_rng(0).integers(0, 255, (256, 256), dtype=np.uint8), "n"))
    return pseudo_label(predictor, scans)


def test_annotated_anatomy_passes(records):
    for r in records:
        assert anatomy_reason(r.points, r.mask, PseudoFilter()) is None, r.name


def test_anatomy_rejections_name_what_is_wrong(records):
    r = records[0]
    f = PseudoFilter()
    # the head above the symphysis: the mask flipped upside down
    upside = np.ascontiguousarray(r.mask[::-1])
    assert "not below" in anatomy_reason(r.points, upside, f)
    # the head in two pieces: a vertical cut through its middle
    cut = r.mask.copy()
    ys, xs = np.nonzero(cut == 2)
    mid = (xs.min() + xs.max()) // 2
    band = cut[:, mid - 3 : mid + 3]
    band[band == 2] = 0
    assert anatomy_reason(r.points, cut, f) == "FH mask in 2 pieces"
    # a head with a bite out of it: one region, not solid
    bitten = r.mask.copy()
    cy = int(ys.mean())
    cv2.circle(bitten, (int(xs.max()), cy), int(0.35 * (xs.max() - xs.min())), 0, -1)
    assert "FH mask not solid" in anatomy_reason(r.points, bitten, f)
    # a tiny symphysis
    small = r.mask.copy()
    small[small == 1] = 0
    small[10:12, 10:12] = 1
    assert anatomy_reason(r.points, small, f).startswith("PS area")
    # an angle no labour has
    pts = r.points.copy()
    pts[2] = pts[1] + (pts[1] - pts[0]) * 0.5  # FH1 on the symphysis' axis, beyond PS2: AoP 180
    assert "outside" in anatomy_reason(pts, None, f)


def test_decisions_on_real_scans(labelled, records):
    by = {p.name: p for p in labelled}
    assert by["noise"].keep is False and by["noise"].check == "verdict"
    for r in records:
        p = by[r.name]
        if p.check == "verdict":  # a real scan the shipped model flags (e.g. an early-labour one): no label
            assert not p.keep and p.reason.startswith("model verdict:") and p.points is None
            continue
        assert p.points is not None and np.isfinite(p.spread) and np.isfinite(p.shift_px)
        if p.keep:  # a kept label measures the scan as the annotation does, to a few degrees
            assert abs(angle_of_progression(*p.points) - angle_of_progression(*r.points)) < 8
            assert p.score < 2
        else:
            assert p.check in ("agreement", "consistency", "anatomy") and p.reason
    assert sum(p.keep for p in labelled) >= 2
    assert sum(by[r.name].check == "verdict" for r in records) <= 1


def test_mirrored_display_is_stored_canonical(labelled):
    by = {p.name: p for p in labelled}
    m, first = by["mirrored"], labelled[0]
    assert m.mirrored and not first.mirrored
    np.testing.assert_array_equal(m.image, first.image)  # flipped back to the usual display
    assert np.abs(m.points - first.points).max() < 1.0
    assert (m.label_map == first.label_map).mean() > 0.99


def test_written_labels_round_trip(labelled, tmp_path):
    counts = write_pseudo_labels(tmp_path, labelled)
    kept = [p for p in labelled if p.keep]
    assert counts["kept"] == len(kept) and counts["scans"] == len(labelled)
    assert sum(counts["rejected"].values()) == len(labelled) - len(kept)
    back = load_psfhs(tmp_path)
    assert len(back) == len(kept)
    for p, r in zip(kept, back, strict=True):
        np.testing.assert_allclose(r.points, p.points, atol=0.006)  # 2 decimals in the CSV
        np.testing.assert_array_equal(r.mask, p.label_map)
        np.testing.assert_array_equal(r.image, p.image)
    with open(tmp_path / "pseudo_labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [row["source"] for row in rows] == [p.name for p in labelled]
    noise = next(row for row in rows if row["source"] == "noise")
    assert noise["keep"] == "0" and noise["check"] == "verdict" and noise["reason"].startswith("model verdict")


def test_rewriting_a_folder_drops_its_old_labels(labelled, tmp_path):
    write_pseudo_labels(tmp_path, labelled)
    write_pseudo_labels(tmp_path, labelled[:1])
    assert len(load_psfhs(tmp_path)) == int(labelled[0].keep)


def test_a_model_without_masks_cannot_pseudo_label(tmp_path):
    from partus.errors import InputError

    class NoMasks:
        has_masks = False

    with pytest.raises(InputError, match="segments PS and FH"):
        pseudo_label(NoMasks(), [])
