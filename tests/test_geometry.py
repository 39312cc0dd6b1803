"""Geometry: pinned against the organisers' values, the 658 PSFHS rows, and independent references."""

from __future__ import annotations

import cmath
import csv
import itertools
import math

import cv2
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from partus.conventions import Orientation, Status
from partus.errors import NotMeasurableError
from partus.geometry import (
    angle_of_progression,
    aop_rows,
    clean_label_map,
    clean_mask,
    hsd_infrapubic,
    hsd_nearest,
    landmarks_from_mask,
    largest_contour,
    measure_landmarks,
    measure_mask,
    symphysis_endpoints,
    tangent_point,
)


def _read_label(path) -> np.ndarray:
    lab = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert lab is not None, path
    return lab


def _point(text: str) -> tuple[int, int]:
    x, y = text.strip().strip("()").split(",")
    return int(x), int(y)


def _complex_phase(a, b, c) -> float:
    """Independent, precise AoP reference: |arg((c - a) / (b - a))| in degrees."""
    return math.degrees(abs(cmath.phase(complex(*np.subtract(c, a)) / complex(*np.subtract(b, a)))))


def _scene(ps=((60, 60), (120, 70)), head_centre=(170, 150), radius=55, shape=(256, 256)) -> np.ndarray:
    """A label map with a thick PS segment (label 1) and a disc head (label 2)."""
    lab = np.zeros(shape, np.uint8)
    cv2.circle(lab, head_centre, radius, 2, -1)
    cv2.line(lab, ps[0], ps[1], 1, 7)
    return lab


# --------------------------------------------------------------------------- reference values
@pytest.mark.shared
def test_iugc2024_organisers_vector(iugc2024_masks):
    lab = _read_label(iugc2024_masks / "20190909T155747I1_0_6.png")
    m = measure_mask(lab, ps_label=7, fh_label=8)
    assert m.status == Status.OK
    assert m.landmarks.ps1 == (299, 84) and m.landmarks.ps2 == (198, 69) and m.landmarks.fh1 == (339, 174)
    assert m.aop == pytest.approx(122.41001622248665, abs=1e-9)
    assert m.hsd == pytest.approx(63.198101237299845, abs=1e-9)


@pytest.mark.shared
def test_reproduces_every_psfhs_dev_row(psfhs_dev):
    rows = list(csv.DictReader(open(psfhs_dev / "landmarks.csv", newline="")))
    assert len(rows) == 658
    for row in rows:
        m = measure_mask(_read_label(psfhs_dev / "labels" / row["Filename"]))
        assert m.ok, (row["Filename"], m.reason)
        lm = m.landmarks
        assert (lm.ps1, lm.ps2, lm.fh1) == tuple(_point(row[k]) for k in ("PS1", "PS2", "FH1")), row
        assert abs(m.aop - float(row["AOP"])) <= 1e-6, row
        assert abs(m.hsd - float(row["HSD"])) <= 1e-6, row


@pytest.mark.shared
def test_mirrored_option_on_flipped_masks_gives_the_same_angle(psfhs_dev):
    """Flipping a scan left-right and measuring it with orientation='mirrored' is the same measurement."""
    names = sorted(p.name for p in (psfhs_dev / "labels").glob("*.png"))[::20]
    for name in names:
        lab = _read_label(psfhs_dev / "labels" / name)
        a = measure_mask(lab)
        b = measure_mask(np.ascontiguousarray(lab[:, ::-1]), orientation="mirrored")
        assert b.orientation == Orientation.MIRRORED
        assert b.aop == pytest.approx(a.aop, abs=1e-9), name
        assert b.hsd == pytest.approx(a.hsd, abs=1e-9), name


# --------------------------------------------------------------------------- AoP
def test_aop_known_angles_and_batch():
    assert angle_of_progression((0, 0), (-1, 0), (1, 0)) == pytest.approx(180.0)
    assert angle_of_progression((0, 0), (-1, 0), (-5, 0)) == pytest.approx(0.0)
    assert angle_of_progression((10, 10), (0, 10), (10, 0)) == pytest.approx(90.0)
    pts = np.array([[[0, 0], [-1, 0], [1, 1]], [[5, 5], [5, 0], [5, 9]]], float)
    out = angle_of_progression(pts[:, 0], pts[:, 1], pts[:, 2])
    np.testing.assert_allclose(out, [135.0, 180.0])


coord = st.floats(-500, 500, allow_nan=False)
pt = st.tuples(coord, coord)


@settings(max_examples=200, deadline=None)
@given(pt, pt, pt, st.floats(0, 2 * math.pi), pt, st.floats(0.01, 100))
def test_aop_matches_an_independent_reference_and_is_similarity_invariant(a, b, c, theta, shift, scale):
    assume(math.dist(a, b) > 1e-2 and math.dist(a, c) > 1e-2)
    aop = angle_of_progression(a, b, c)
    assert 0.0 <= aop <= 180.0
    assert aop == pytest.approx(_complex_phase(a, b, c), abs=1e-9)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    moved = [scale * (rot @ np.asarray(p)) + np.asarray(shift) for p in (a, b, c)]
    assert angle_of_progression(*moved) == pytest.approx(aop, abs=1e-6)
    mirrored = [np.array([-p[0], p[1]]) for p in (a, b, c)]
    assert angle_of_progression(*mirrored) == pytest.approx(aop, abs=1e-9)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (((1, 1), (1, 1), (3, 4)), "ps1 and ps2 coincide"),
        (((1, 1), (2, 1), (1, 1)), "ps1 and fh1 coincide"),
        (((1, 1, 1), (2, 1), (0, 0)), r"ps1 must have shape \(2,\) or \(N, 2\), got \(3,\)"),
        (((np.nan, 1), (2, 1), (0, 0)), "ps1 must be finite"),
        (((0, 0), (2, 1), [(0, 3), (1, 1)]), "same shape"),
    ],
)
def test_aop_rejects_degenerate_input(args, match):
    with pytest.raises(ValueError, match=match):
        angle_of_progression(*args)


# --------------------------------------------------------------------------- contour rule pieces
def _brute_farthest(pts):
    best, pair = -1, None
    for i, j in itertools.combinations(range(len(pts)), 2):
        d = int(((pts[i] - pts[j]) ** 2).sum())
        if d > best:
            best, pair = d, (i, j)
    return pair


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 12))
def test_endpoints_equal_the_exhaustive_first_farthest_pair(seed, n_blobs):
    rng = np.random.default_rng(seed)
    m = np.zeros((40, 40), np.uint8)
    for _ in range(n_blobs):  # random unions of small rectangles/discs: many ties and concavities
        x, y = rng.integers(2, 38, 2)
        if rng.random() < 0.5:
            cv2.circle(m, (int(x), int(y)), int(rng.integers(1, 6)), 1, -1)
        else:
            cv2.rectangle(m, (int(x), int(y)), (int(x + rng.integers(0, 8)), int(y + rng.integers(0, 3))), 1, -1)
    c = largest_contour(m)
    assume(len({tuple(p) for p in c}) >= 2)
    i, j = _brute_farthest(c)
    a, b = c[i], c[j]
    expect = (a, b) if a[0] > b[0] else (b, a)
    ps1, ps2 = symphysis_endpoints(c)
    assert tuple(ps1) == tuple(expect[0]) and tuple(ps2) == tuple(expect[1])
    mirrored = (a, b) if a[0] < b[0] else (b, a)
    m1, m2 = symphysis_endpoints(c, orientation="mirrored")
    assert tuple(m1) == tuple(mirrored[0]) and tuple(m2) == tuple(mirrored[1])


def test_largest_contour_picks_the_component_with_most_boundary_points():
    m = np.zeros((50, 50), np.uint8)
    cv2.rectangle(m, (2, 2), (6, 6), 1, -1)  # 16 boundary points
    cv2.rectangle(m, (20, 20), (40, 30), 1, -1)  # 60 boundary points
    c = largest_contour(m)
    assert len(c) == 60 and c[:, 0].min() == 20 and c[:, 1].max() == 30


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000))
def test_tangent_point_is_a_support_point_and_hsd_matches_all_head_pixels(seed):
    rng = np.random.default_rng(seed)
    cx, cy, r = int(rng.integers(120, 200)), int(rng.integers(110, 190)), int(rng.integers(20, 50))
    ps = (
        (int(rng.integers(10, 60)), int(rng.integers(10, 60))),
        (int(rng.integers(70, 110)), int(rng.integers(20, 80))),
    )
    lab = _scene(ps, (cx, cy), r)
    lm = landmarks_from_mask(lab)
    ps1, ps2, fh1 = lm.to_array()
    fh = largest_contour(lab == 2)
    # no head point lies beyond the tangent line: every angle <= the AoP
    angles = [_complex_phase(ps1, ps2, p) for p in fh if tuple(p) != tuple(ps1)]
    assert max(angles) <= angle_of_progression(ps1, ps2, fh1) + 1e-6
    # HSD 'nearest' equals the distance to the nearest head PIXEL (interior pixels are never nearer)
    yx = np.argwhere(lab == 2)
    ref = np.sqrt(((yx[:, ::-1] - ps1) ** 2).sum(axis=1)).min()
    assert hsd_nearest(ps1, fh) == pytest.approx(ref, abs=1e-12)


def test_tangent_point_maximises_the_angle_and_ties_pick_the_point_nearest_ps1():
    # PS1 = (50, 10), PS2 = (0, 10): angles of (50,12) 90, (60,30) 116.57, (60,12) 168.69 degrees
    contour = np.array([[50, 12], [50, 20], [50, 30], [60, 30], [60, 12]])
    assert tuple(tangent_point((50, 10), (0, 10), contour)) == (60, 12)
    # (70, 30) and (60, 20) both lie on the 135-degree line through PS1; (60, 40) is at 108.4 degrees
    tie = np.array([[70, 30], [60, 40], [60, 20]])
    assert tuple(tangent_point((50, 10), (0, 10), tie)) == (60, 20)
    collinear = np.array([[70, 10], [60, 10], [80, 10]])  # all at 180 degrees
    assert tuple(tangent_point((50, 10), (0, 10), collinear)) == (60, 10)


# --------------------------------------------------------------------------- HSD infrapubic
def test_hsd_infrapubic_on_a_circle_is_analytic():
    # PS horizontal at y=50 from x=20 (PS2) to x=100 (PS1); infrapubic line = vertical x=100, downwards.
    # Head: circle centre (130, 150) radius 50 -> the line x=100 meets it at y = 150 - sqrt(50^2 - 30^2) = 110.
    t = np.linspace(0, 2 * np.pi, 20_000, endpoint=False)
    circle = np.c_[130 + 50 * np.cos(t), 150 + 50 * np.sin(t)]
    assert hsd_infrapubic((100, 50), (20, 50), circle) == pytest.approx(60.0, abs=1e-3)
    # the nearest-point HSD is shorter: |PS1 - centre| - r
    assert hsd_nearest((100, 50), circle) == pytest.approx(math.hypot(30, 100) - 50, abs=1e-3)


def test_hsd_infrapubic_reports_a_miss():
    circle = np.array([[300, 300], [310, 300], [310, 310], [300, 310]])
    with pytest.raises(NotMeasurableError, match="does not meet the fetal head"):
        hsd_infrapubic((100, 50), (20, 50), circle)


def test_measure_mask_hsd_in_mm_with_anisotropic_spacing():
    lab = _scene()
    px = measure_mask(lab)
    mm = measure_mask(lab, pixel_spacing=(0.2, 0.2))
    assert mm.hsd_unit == "mm" and px.hsd_unit == "px"
    assert mm.hsd == pytest.approx(0.2 * px.hsd)
    assert mm.aop == px.aop
    with pytest.raises(ValueError, match="pixel_spacing must be two positive numbers"):
        measure_mask(lab, pixel_spacing=(0.2, -1))


# --------------------------------------------------------------------------- degenerate masks
@pytest.mark.parametrize(
    ("lab", "reason"),
    [
        (np.zeros((64, 64), np.uint8), "pubic symphysis and fetal head not found"),
        (np.pad(np.full((10, 10), 2, np.uint8), 20), "pubic symphysis not found"),
        (np.pad(np.full((10, 10), 1, np.uint8), 20), "fetal head not found"),
    ],
)
def test_missing_structures_are_not_measurable(lab, reason):
    m = measure_mask(lab)
    assert m.status == Status.NOT_MEASURABLE and reason in m.reason
    assert math.isnan(m.aop) and math.isnan(m.hsd)
    with pytest.raises(NotMeasurableError, match=reason):
        landmarks_from_mask(lab)


def test_single_pixel_symphysis_is_not_measurable():
    lab = _scene()
    lab[lab == 1] = 0
    lab[5, 5] = 1
    m = measure_mask(lab)
    assert not m.ok and "single point" in m.reason


def test_symphysis_on_the_border_is_flagged_unless_allowed():
    lab = _scene(ps=((0, 60), (70, 70)))
    m = measure_mask(lab)
    assert not m.ok and "PS2 lies on the image border" in m.reason
    assert m.landmarks is not None  # the points are still reported, for display
    assert measure_mask(lab, allow_border=True).ok


def test_measure_landmarks_with_coincident_points_is_not_measurable():
    m = measure_landmarks([(5, 5), (5, 5), (9, 9)])
    assert not m.ok and "coincide" in m.reason


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"orientation": "sideways"}, "orientation must be one of 'standard', 'mirrored', got 'sideways'"),
        ({"hsd_method": "closest"}, "hsd_method must be one of 'nearest', 'infrapubic'"),
    ],
)
def test_unknown_options_list_the_valid_ones(kwargs, match):
    with pytest.raises(ValueError, match=match):
        measure_mask(_scene(), **kwargs)


@pytest.mark.parametrize(
    ("lab", "match"),
    [
        (np.zeros((4, 4, 3), np.uint8), r"label_map must be a 2-D \(H, W\) array, got shape \(4, 4, 3\)"),
        (np.zeros((4, 4), np.float32), "label_map must be a boolean or integer array, got dtype float32"),
    ],
)
def test_wrong_shape_or_dtype_is_a_clear_error(lab, match):
    with pytest.raises(ValueError, match=match):
        measure_mask(lab)


# --------------------------------------------------------------------------- clean-up
def test_clean_mask_fills_holes_keeps_largest_and_repairs_border_notches():
    m = np.zeros((100, 100), bool)
    m[20:80, 0:60] = True  # structure cut by the left border
    m[40:45, 30:35] = False  # interior hole
    m[50:55, 0:3] = False  # notch opening onto the border, enclosed by structure + border
    m[90:95, 90:95] = True  # island
    out = clean_mask(m)
    expect = np.zeros_like(m)
    expect[20:80, 0:60] = True
    np.testing.assert_array_equal(out, expect)
    # without border repair the notch stays; the hole is still filled
    no_repair = clean_mask(m, border_repair=False)
    assert not no_repair[50:55, 0:3].any() and no_repair[40:45, 30:35].all()


def test_clean_mask_does_not_fill_the_open_background():
    m = np.zeros((60, 60), bool)
    m[:, 20:25] = True  # a wall from top to bottom: the left background is border-connected and large
    out = clean_mask(m)
    np.testing.assert_array_equal(out, m)


@pytest.mark.parametrize("fill_holes", [True, False])
def test_clean_mask_single_regions_match_the_reference(fill_holes):
    """The one-component shortcuts: a disc (one background region, at the border), a frame along the whole
    border (one background region, enclosed: a hole), and a full mask (no background)."""
    yy, xx = np.mgrid[0:50, 0:60]
    disc = (xx - 30) ** 2 + (yy - 25) ** 2 < 15**2
    frame = np.ones((50, 60), bool)
    frame[3:-3, 3:-3] = False
    for m in (disc, frame, np.ones((50, 60), bool)):
        out = clean_mask(m, fill_holes=fill_holes)
        np.testing.assert_array_equal(out, _clean_reference(m, fill_holes, True, 0.05))
        assert out is not m
    assert clean_mask(frame, fill_holes=fill_holes).all() == fill_holes  # the enclosed centre is a hole


def _clean_reference(m, fill_holes, border_repair, max_notch):
    """The three clean-up rules written out independently (scipy.ndimage labelling, one component at a time);
    None where a tie for the largest component leaves the choice to the labelling order."""
    ndi = pytest.importorskip("scipy.ndimage")
    lab, n = ndi.label(m, structure=np.ones((3, 3)))
    if n == 0:
        return m.copy()
    sizes = [(lab == k).sum() for k in range(1, n + 1)]
    if sizes.count(max(sizes)) > 1:
        return None
    out = lab == 1 + int(np.argmax(sizes))
    bg, bn = ndi.label(~out)  # 4-connected background components
    comps = [bg == k for k in range(1, bn + 1)]
    areas = [c.sum() for c in comps]
    if areas and areas.count(max(areas)) > 1:
        return None
    largest = int(np.argmax(areas)) if comps else -1
    filled = out.copy()
    for k, c in enumerate(comps):
        touches = c[0].any() or c[-1].any() or c[:, 0].any() or c[:, -1].any()
        if not touches and fill_holes:
            filled |= c
        elif touches and border_repair and k != largest and c.sum() <= max_notch * out.sum():
            filled |= c
    return filled


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    h=st.integers(3, 40),
    w=st.integers(3, 40),
    density=st.floats(0.05, 0.95),
    fill_holes=st.booleans(),
    border_repair=st.booleans(),
    max_notch=st.sampled_from([0.0, 0.05, 0.5, 2.0]),
)
def test_clean_mask_matches_an_independent_reference(seed, h, w, density, fill_holes, border_repair, max_notch):
    m = np.random.default_rng(seed).random((h, w)) < density
    out = clean_mask(m, fill_holes=fill_holes, border_repair=border_repair, max_notch=max_notch)
    ref = _clean_reference(m, fill_holes, border_repair, max_notch)
    assume(ref is not None)
    assert out.dtype == bool
    np.testing.assert_array_equal(out, ref)


def test_clean_label_map_keeps_labels_and_symphysis_priority():
    lab = _scene()
    noisy = lab.copy()
    noisy[150:153, 160:163] = 0  # hole in the head
    noisy[5:8, 240:243] = 1  # stray PS speck
    out = clean_label_map(noisy)
    assert set(np.unique(out)) == {0, 1, 2}
    np.testing.assert_array_equal(out, lab)
    assert measure_mask(noisy, clean=True).aop == measure_mask(lab).aop


def test_aop_rows_matches_the_scalar_angle_and_is_nan_where_it_is_undefined():
    rows = np.array([
        [(0, 0), (-1, 0), (1, 1)],  # 135 deg
        [(10, 5), (3, 9), (20, 30)],
        [(1, 1), (1, 1), (3, 4)],  # PS2 on PS1
        [(1, 1), (2, 1), (1, 1)],  # FH1 on PS1
        [(np.nan, 1), (2, 1), (5, 5)],  # not finite
    ], dtype=float)  # fmt: skip
    got = aop_rows(rows)
    assert got[0] == pytest.approx(135.0)
    assert got[1] == pytest.approx(angle_of_progression(*rows[1]))
    assert np.isnan(got[2:]).all()
