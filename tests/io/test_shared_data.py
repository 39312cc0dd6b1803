"""partus.io against the real datasets in ``<repo>/../shared`` (skipped when absent)."""

import numpy as np
import pytest

from partus.io import (
    read_any,
    read_image,
    read_iugc2024_landmarks,
    read_label_map,
    read_landmarks_csv,
    read_manifest,
    read_medical,
    read_predictions_csv,
    read_psfhs,
    write_predictions_csv,
)

pytestmark = pytest.mark.shared

MHA_IDS = ["03744", "03757", "03770", "03783", "03796", "03809", "03822", "03835"]


@pytest.fixture
def psfhs(shared_data):
    return shared_data / "psfhs-dev"


def test_psfhs_png_layout(psfhs):
    samples = read_psfhs(psfhs)
    assert len(samples) == 658 and samples[0].id == "03744" and samples[-1].id == "04401"
    assert all(s.label_path is not None and s.group is not None for s in samples)
    assert len({s.group for s in samples}) == len(set(read_manifest(psfhs / "manifest.csv").values()))


def test_psfhs_mha_layout(psfhs):
    samples = read_psfhs(psfhs / "mha_samples")
    assert [s.id for s in samples] == MHA_IDS and all(s.group is None for s in samples)


@pytest.mark.parametrize("sample_id", MHA_IDS)
def test_mha_matches_png(psfhs, sample_id):
    image = read_medical(psfhs / "mha_samples" / "image_mha" / f"{sample_id}.mha")
    png = read_image(psfhs / "images" / f"{sample_id}.png")
    assert image.pixels.shape == (256, 256) and image.pixels.dtype == np.uint8
    assert np.array_equal(image.pixels, png)
    assert image.pixel_spacing is None  # PSFHS ships the default spacing 1: no physical size
    label_mha = read_label_map(psfhs / "mha_samples" / "label_mha" / f"{sample_id}.mha", scheme="psfhs")
    label_png = read_label_map(psfhs / "labels" / f"{sample_id}.png", scheme="psfhs")
    assert np.array_equal(label_mha, label_png) and set(np.unique(label_png)) == {0, 1, 2}


def test_mha_png_is_channel_zero(psfhs):
    import SimpleITK as sitk

    raw = sitk.GetArrayFromImage(sitk.ReadImage(str(psfhs / "mha_samples" / "image_mha" / "03744.mha")))
    assert raw.shape == (3, 256, 256)
    assert np.array_equal(read_any(psfhs / "images" / "03744.png").pixels, raw[0])


def test_landmarks_csv_round_trip(psfhs, tmp_path):
    landmarks = read_landmarks_csv(psfhs / "landmarks.csv")
    assert len(landmarks) == 658
    np.testing.assert_array_equal(landmarks["03744.png"], [[146, 31], [59, 54], [214, 68]])
    rows = read_predictions_csv(psfhs / "landmarks.csv")
    assert rows["03744.png"].aop == pytest.approx(136.640231) and rows["03744.png"].hsd == pytest.approx(30.364453)
    back = read_predictions_csv(write_predictions_csv(tmp_path / "copy.csv", rows))
    for name, row in rows.items():
        np.testing.assert_array_equal(back[name].points, row.points)
        assert back[name].aop == row.aop and back[name].hsd == row.hsd


def test_iugc2024_masks_and_landmarks(shared_data):
    folder = shared_data / "iugc2024-sample-masks"
    masks = sorted(folder.glob("*.png"))
    assert len(masks) == 17
    for path in masks:
        labels = read_label_map(path, scheme="iugc2024")
        assert labels.shape == (512, 512) and set(np.unique(labels)) == {0, 1, 2}
    entry = read_iugc2024_landmarks(folder / "landmarks_documented.json")["20190909T155747I1_0_6.png"]
    np.testing.assert_array_equal(entry["landmarks"], [[299, 84], [198, 69], [339, 174]])
    assert entry["aop"] == 122.41001622248665 and entry["hsd"] == 63.198101237299845
    labels = read_label_map(folder / "20190909T155747I1_0_6.png")
    for (x, y), cls in zip(entry["landmarks"].astype(int), (1, 1, 2), strict=True):
        assert labels[y, x] == cls  # (x, y) order: PS points on PS pixels, FH1 on FH pixels
