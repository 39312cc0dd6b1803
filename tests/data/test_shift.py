"""The acquisition-shift suite: determinism, geometry consistent with the image, exact ground truth."""

from __future__ import annotations

import math
import re

import cv2
import numpy as np
import pytest

from partus.data.records import load_phantoms
from partus.data.shift import SHIFTS, ShiftedScan, apply_shift, mirror, shift_names
from partus.geometry import angle_of_progression

GEOMETRIC = ["zoom_in", "zoom_out", "shift_fov", "rotate"]
PHOTOMETRIC = ["gain_low", "gain_high", "gamma", "speckle", "blur", "fan"]
SEEDED = ["gamma", "speckle", "shift_fov", "rotate"]
UNSEEDED = [n for n in SHIFTS if n not in SEEDED]

H, W = 96, 128
#: PS1, PS2, FH1 well inside the image (AoP about 124 deg).
POINTS = np.array([[50.0, 30.0], [28.0, 40.0], [80.0, 60.0]])


def _aop(p: np.ndarray) -> float:
    return angle_of_progression(p[0], p[1], p[2])


def _textured(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(H, W), dtype=np.uint8)


def _blob(x: float, y: float, sigma: float = 1.5) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return np.clip(np.rint(250.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))), 0, 255).astype(np.uint8)


def _peak(img: np.ndarray, near: np.ndarray, radius: int = 6) -> np.ndarray:
    """Intensity-weighted centroid of the brightest pixel's 3 x 3 neighbourhood, searched near ``near``."""
    x0, y0 = (int(round(v)) for v in near)
    win = img[max(0, y0 - radius) : y0 + radius + 1, max(0, x0 - radius) : x0 + radius + 1].astype(float)
    iy, ix = np.unravel_index(np.argmax(win), win.shape)
    py, px = iy + max(0, y0 - radius), ix + max(0, x0 - radius)
    sub = img[py - 1 : py + 2, px - 1 : px + 2].astype(float)
    yy, xx = np.mgrid[py - 1 : py + 2, px - 1 : px + 2]
    return np.array([(xx * sub).sum() / sub.sum(), (yy * sub).sum() / sub.sum()])


def test_suite_names_and_order():
    assert shift_names() == list(SHIFTS)
    assert shift_names() == ["gain_low", "gain_high", "gamma", "speckle", "blur", "zoom_in", "zoom_out",
                             "shift_fov", "rotate", "fan"]  # fmt: skip


@pytest.mark.parametrize("name", list(SHIFTS))
def test_deterministic_for_same_seed_and_index(name):
    img, mask = _textured(1), (_textured(2) % 3).astype(np.uint8)
    a = apply_shift(name, img, POINTS, mask, seed=5, index=7)
    b = apply_shift(name, img.copy(), POINTS.copy(), mask.copy(), seed=5, index=7)
    assert isinstance(a, ShiftedScan)
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.points, b.points)
    assert np.array_equal(a.mask, b.mask)
    assert a.valid == b.valid


@pytest.mark.parametrize("name", SEEDED)
def test_seeded_shifts_differ_across_indices_and_seeds(name):
    img = _textured(3)
    outs = [apply_shift(name, img, POINTS, seed=0, index=i) for i in range(16)]
    distinct = {o.image.tobytes() + o.points.tobytes() for o in outs}
    assert len(distinct) >= 2, f"{name}: 16 indices gave the same output"
    if name == "speckle":  # a fresh noise field per scan
        assert len(distinct) == 16
    by_seed = {apply_shift(name, img, POINTS, seed=s, index=0).image.tobytes() for s in range(16)}
    assert len(by_seed) >= 2


@pytest.mark.parametrize("name", UNSEEDED)
def test_unseeded_shifts_are_the_same_for_every_scan(name):
    img = _textured(4)
    a = apply_shift(name, img, POINTS, seed=0, index=0)
    b = apply_shift(name, img, POINTS, seed=3, index=11)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.points, b.points)


def test_shift_fov_and_rotate_take_both_directions():
    dxs = {round(float(apply_shift("shift_fov", _textured(0), POINTS, index=i).points[0, 0] - POINTS[0, 0]), 9)
           for i in range(32)}  # fmt: skip
    assert dxs == {round(0.12 * W, 9), round(-0.12 * W, 9)}
    centre = np.array([(W - 1) / 2, (H - 1) / 2])
    angles = set()
    for i in range(32):
        p = apply_shift("rotate", _textured(0), POINTS, index=i).points
        before, after = POINTS[0] - centre, p[0] - centre
        turn = math.degrees(math.atan2(after[1], after[0]) - math.atan2(before[1], before[0]))
        angles.add(round((turn + 180) % 360 - 180, 6))
        assert np.allclose(np.linalg.norm(p - centre, axis=1), np.linalg.norm(POINTS - centre, axis=1))
    assert angles == {12.0, -12.0}


@pytest.mark.parametrize(("name", "factor"), [("zoom_in", 1.2), ("zoom_out", 0.8)])
def test_zoom_scales_about_the_probe(name, factor):
    s = apply_shift(name, _textured(0), POINTS)
    cx = (W - 1) / 2
    expected = np.column_stack([cx + factor * (POINTS[:, 0] - cx), factor * POINTS[:, 1]])
    np.testing.assert_allclose(s.points, expected, atol=1e-9)


@pytest.mark.parametrize("name", GEOMETRIC)
@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_landmarks_follow_the_image(name, index):
    """A bright dot at each landmark lands where the transformed landmark says (within 1 px)."""
    for p in POINTS:
        s = apply_shift(name, _blob(*p), p[None], seed=0, index=index)
        assert s.valid
        got = _peak(s.image, s.points[0])
        assert np.linalg.norm(got - s.points[0]) < 1.0, (name, p, s.points[0], got)


@pytest.mark.parametrize("name", GEOMETRIC)
@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_mask_moves_with_the_landmarks(name, index):
    mask = np.zeros((H, W), np.uint8)
    cv2.circle(mask, (int(POINTS[0, 0]), int(POINTS[0, 1])), 6, 1, -1)  # PS around PS1
    cv2.circle(mask, (int(POINTS[2, 0]), int(POINTS[2, 1])), 6, 2, -1)  # FH around FH1
    s = apply_shift(name, _textured(0), POINTS, mask, seed=0, index=index)
    assert s.mask.shape == mask.shape and s.mask.dtype == np.uint8
    assert set(np.unique(s.mask)) <= {0, 1, 2}  # nearest-neighbour: no blended labels
    for k, label in ((0, 1), (2, 2)):
        x, y = np.rint(s.points[k]).astype(int)
        assert s.mask[y, x] == label, (name, k)
    # The label's centroid moved as the landmark did.
    for k, label in ((0, 1), (2, 2)):
        ys, xs = np.nonzero(s.mask == label)
        assert np.linalg.norm(np.array([xs.mean(), ys.mean()]) - s.points[k]) < 1.0


@pytest.mark.parametrize("name", list(SHIFTS))
def test_aop_is_invariant_under_every_shift(name):
    for r in load_phantoms(6, seed=2, size=96):
        for index in range(3):
            s = apply_shift(name, r.image, r.points, r.mask, seed=1, index=index)
            assert abs(_aop(s.points) - _aop(r.points)) < 1e-6
            if name in PHOTOMETRIC:
                assert s.mask is r.mask or np.array_equal(s.mask, r.mask)


@pytest.mark.parametrize("name", PHOTOMETRIC)
def test_photometric_shifts_keep_points_dtype_and_shape(name):
    img = _textured(5)
    s = apply_shift(name, img, POINTS, seed=0, index=2)
    assert np.array_equal(s.points, POINTS)
    assert s.image.dtype == np.uint8 and s.image.shape == img.shape
    assert s.valid
    assert not np.array_equal(s.image, img)


def test_photometric_values_against_formulas():
    img = _textured(6)
    x = img.astype(float)
    low = apply_shift("gain_low", img, POINTS).image
    assert np.array_equal(low, np.clip(np.rint(0.6 * x), 0, 255).astype(np.uint8))
    high = apply_shift("gain_high", img, POINTS).image
    assert np.array_equal(high, np.clip(np.rint(1.5 * (x - 20) + 20), 0, 255).astype(np.uint8))
    seen = set()
    for i in range(12):
        g = apply_shift("gamma", img, POINTS, index=i).image.astype(int)
        refs = {gm: np.rint(255 * (x / 255) ** gm).astype(int) for gm in (0.6, 1.7)}
        match = [gm for gm, ref in refs.items() if np.abs(g - ref).max() <= 1]
        assert len(match) == 1
        seen.add(match[0])
    assert seen == {0.6, 1.7}
    blurred = apply_shift("blur", img, POINTS).image.astype(float)
    assert blurred.std() < 0.5 * x.std()  # sigma 1.6 px smooths i.i.d. noise strongly
    flat = np.full((H, W), 100, np.uint8)
    sp = apply_shift("speckle", flat, POINTS).image.astype(float)
    assert abs(sp.mean() - 100) < 3 and 0.25 < sp.std() / 100 < 0.45  # relative SD 0.35


def test_fan_draws_another_scanners_screen():
    img = np.full((H, W), 200, np.uint8)
    s = apply_shift("fan", img, POINTS).image
    assert np.all(s[: max(2, H // 40)] == 150)  # UI bar
    assert s[5, 0] == 24 and s[5, W - 1] == 24  # outside the narrower sector (apex above the image)
    assert s[H // 2, W // 2] == 200  # inside it, untouched


def test_valid_is_false_when_a_landmark_leaves_the_image():
    near_right = POINTS.copy()
    near_right[2] = [W - 3, 60]
    s = apply_shift("zoom_in", _textured(0), near_right)
    assert s.points[2, 0] > W - 1 and not s.valid
    assert apply_shift("zoom_out", _textured(0), near_right).valid
    assert apply_shift("zoom_in", _textured(0), POINTS).valid
    # Moved sideways by 12 % of the width: the direction decides.
    results = {}
    for i in range(16):
        moved = apply_shift("shift_fov", _textured(0), near_right, index=i)
        results[bool(moved.points[2, 0] > near_right[2, 0])] = moved.valid
    assert results == {True: False, False: True}  # to the right: out; to the left: still in


def test_unknown_shift_lists_the_known_ones():
    with pytest.raises(KeyError, match=re.escape("unknown shift 'snow'")) as err:
        apply_shift("snow", _textured(0), POINTS)
    for name in SHIFTS:
        assert name in str(err.value)


@pytest.mark.parametrize(
    "image",
    [np.zeros((H, W), np.float32), np.zeros((H, W), np.uint16), np.zeros((H, W, 3), np.uint8), np.zeros(W, np.uint8)],
)
def test_bad_images_raise(image):
    with pytest.raises(ValueError, match="2-D uint8"):
        apply_shift("blur", image, POINTS)


def test_mirror_maps_x_and_keeps_identities():
    img = _textured(7)
    mask = (_textured(8) % 3).astype(np.uint8)
    m = mirror(img, POINTS, mask)
    np.testing.assert_array_equal(m.points[:, 0], (W - 1) - POINTS[:, 0])
    np.testing.assert_array_equal(m.points[:, 1], POINTS[:, 1])
    assert np.array_equal(m.image, np.fliplr(img)) and np.array_equal(m.mask, np.fliplr(mask))
    assert m.valid and m.image.flags.c_contiguous
    assert abs(_aop(m.points) - _aop(POINTS)) < 1e-9
    # Identities: the dot at PS1 is at the mirrored PS1 (first row) after the flip.
    for k, p in enumerate(POINTS):
        dot = mirror(_blob(*p), POINTS)
        assert np.linalg.norm(_peak(dot.image, dot.points[k]) - dot.points[k]) < 0.5
    back = mirror(m.image, m.points, m.mask)
    assert np.array_equal(back.image, img) and np.array_equal(back.points, POINTS) and np.array_equal(back.mask, mask)
    assert mirror(img, POINTS).mask is None


def test_mirror_does_not_modify_its_inputs():
    img, pts = _textured(9), POINTS.copy()
    mirror(img, pts)
    assert np.array_equal(pts, POINTS) and np.array_equal(img, _textured(9))
