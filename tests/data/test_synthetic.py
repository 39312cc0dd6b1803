"""Synthetic phantoms: deterministic, exact official-rule ground truth, plausible appearance."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partus.conventions import FH, PS
from partus.data.synthetic import Phantom, make_phantom, make_phantoms
from partus.geometry import angle_of_progression, landmarks_from_mask, measure_mask


def _fov_distance(p: Phantom) -> np.ndarray:
    """Distance (px, approximate) of every pixel inside the fan recorded in ``params``; < 0 outside."""
    h, w = p.image.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    (ax, ay), (r0, r1) = p.params["fan_apex"], p.params["fan_radii"]
    r, th = np.hypot(xx - ax, yy - ay), np.arctan2(xx - ax, yy - ay)
    half = np.radians(p.params["fan_half_angle"])
    return np.minimum(np.minimum(r - r0, r1 - r), np.sin(half - np.abs(th)) * r)


def test_same_seed_same_phantom_different_seed_different():
    a, b, c = make_phantom(7), make_phantom(7), make_phantom(8)
    for x, y in ((a.image, b.image), (a.label_map, b.label_map), (a.fov, b.fov)):
        np.testing.assert_array_equal(x, y)
    assert (a.landmarks, a.aop, a.hsd, a.params) == (b.landmarks, b.aop, b.hsd, b.params)
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.label_map, c.label_map)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_ground_truth_is_the_official_rule_on_the_mask(seed):
    p = make_phantom(seed, size=128)
    assert p.image.dtype == p.label_map.dtype == np.uint8
    assert set(np.unique(p.label_map)) == {0, PS, FH}
    assert p.landmarks == landmarks_from_mask(p.label_map)
    assert p.aop == angle_of_progression(*p.landmarks.to_array())
    assert 95.0 <= p.aop <= 160.0
    m = measure_mask(p.label_map)  # strict: no PS endpoint on the image border
    assert m.ok and m.hsd == p.hsd > 0


@pytest.mark.parametrize("seed", range(4))
def test_structures_lie_in_the_fan_apart_and_inside_the_image(seed):
    p = make_phantom(seed, size=128)
    d = _fov_distance(p)
    assert p.fov[d > 1e-3].all() and not p.fov[d < -1e-3].any()
    assert (d[p.label_map > 0] >= 2).all()
    lab = p.label_map
    assert not (lab[[0, -1], :].any() or lab[:, [0, -1]].any())
    dist_to_ps = cv2.distanceTransform((lab != PS).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    assert dist_to_ps[lab == FH].min() >= 4  # >= 3 px of background between the structures
    for label in (PS, FH):  # each structure is one component
        assert cv2.connectedComponents((lab == label).astype(np.uint8))[0] == 2


def test_appearance_is_ultrasound_like():
    p = make_phantom(3)
    img, lab = p.image, p.label_map
    assert (img[~p.fov] == 0).all() and img[:5, :5].max() == 0  # black outside the fan
    fan = p.fov & (lab == 0)
    assert 10 < img[fan].mean() < 120
    core = cv2.erode((lab == FH).astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    assert img[lab == PS].mean() > 2 * img[core].mean()  # bright symphysis, darker head interior
    rim = (lab == FH) & ~cv2.erode((lab == FH).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    assert img[rim].mean() > 1.5 * img[core].mean()  # bright skull rim
    assert img[core].std() > 5  # speckle, not a flat fill
    near, deep = fan[:80].copy(), fan.copy()
    deep[:160] = False
    assert img[:80][near].mean() > img[deep].mean()  # depth attenuation
    smooth = make_phantom(3, noise=0.0).image
    assert smooth[core].std() < img[core].std()  # noise scales the speckle


def test_mirrored_phantoms_need_the_mirrored_option():
    for seed in range(5):
        p = make_phantom(seed, size=128, mirrored=True)
        assert p.params["mirrored"] and p.aop < 90
        assert p.landmarks == landmarks_from_mask(p.label_map)
        assert 95.0 <= measure_mask(p.label_map, orientation="mirrored").aop <= 160.0
        # the head lies beyond the LEFT end of the symphysis
        ps_x = np.nonzero(p.label_map == PS)[1].mean()
        assert np.nonzero(p.label_map == FH)[1].mean() < ps_x + 0.5 * p.params["ps_length"]


@pytest.mark.parametrize("mirrored", [False, True])
def test_params_describe_the_returned_frame(mirrored):
    p = make_phantom(11, size=128, mirrored=mirrored)
    h, w = p.label_map.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(float)

    def ellipse(centre, semi_axes, angle):
        t = np.radians(angle)
        dx, dy = xx - centre[0], yy - centre[1]
        u, v = dx * np.cos(t) + dy * np.sin(t), -dx * np.sin(t) + dy * np.cos(t)
        return (u / semi_axes[0]) ** 2 + (v / semi_axes[1]) ** 2 <= 1

    q = p.params
    ps = ellipse(q["ps_centre"], (q["ps_length"] / 2, q["ps_width"] / 2), q["ps_angle"])
    fh = ellipse(q["fh_centre"], q["fh_axes"], q["fh_angle"])
    assert (ps != (p.label_map == PS)).sum() <= 2 and (fh != (p.label_map == FH)).sum() <= 2  # float32 ties
    assert q["seed"] == 11 and q["size"] == (128, 128) and q["tries"] >= 1


@pytest.mark.parametrize("size", [64, (96, 160), (160, 96)])
def test_other_sizes_work(size):
    p = make_phantom(2, size=size, aop_range=(110, 130))
    shape = (size, size) if isinstance(size, int) else size
    assert p.image.shape == p.label_map.shape == p.fov.shape == shape
    assert 110 <= p.aop <= 130
    assert p.landmarks == landmarks_from_mask(p.label_map)


def test_make_phantoms_is_deterministic_and_mirrors_a_share():
    a = make_phantoms(6, seed=5, mirrored_fraction=0.5, size=64)
    b = make_phantoms(6, seed=5, mirrored_fraction=0.5, size=64)
    assert [p.landmarks for p in a] == [p.landmarks for p in b]
    assert sum(p.params["mirrored"] for p in a) == 3
    assert all((p.aop < 90) == p.params["mirrored"] for p in a)
    assert len({p.params["seed"] for p in a}) == 6
    # item i does not depend on n
    assert make_phantoms(2, seed=5, size=64)[1].landmarks == make_phantoms(4, seed=5, size=64)[1].landmarks
    assert make_phantoms(0) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 32}, "at least 64"),
        ({"aop_range": (150, 100)}, "aop_range"),
        ({"aop_range": (60, 80)}, "aop_range"),
        ({"noise": -1.0}, "noise"),
        ({"aop_range": (95, 96), "mirrored": True, "size": 64}, "no phantom.*mirrored"),
    ],
)
def test_impossible_requests_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_phantom(0, **kwargs)


def test_importing_loads_no_torch():
    code = "import sys, partus.data.synthetic; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_make_phantoms_rejects_bad_counts():
    with pytest.raises(ValueError, match="n must"):
        make_phantoms(-1)
    with pytest.raises(ValueError, match="mirrored_fraction"):
        make_phantoms(2, mirrored_fraction=1.5)
