"""Synthetic phantoms: deterministic, exact ground truth, plausible appearance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partus.conventions import FH, PS
from partus.data.synthetic import make_phantom, make_phantoms
from partus.geometry import angle_of_progression, landmarks_from_mask, measure_mask


def test_same_seed_same_phantom_different_seed_different():
    a, b, c = make_phantom(7), make_phantom(7), make_phantom(8)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label_map, b.label_map)
    assert a.landmarks == b.landmarks
    assert not np.array_equal(a.image, c.image)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_ground_truth_is_the_official_rule_on_the_mask(seed):
    p = make_phantom(seed)
    assert set(np.unique(p.label_map)) == {0, PS, FH}
    assert p.landmarks == landmarks_from_mask(p.label_map)
    assert p.aop == pytest.approx(angle_of_progression(*p.landmarks.to_array()), abs=1e-12)
    assert 95.0 <= p.aop <= 160.0
    assert measure_mask(p.label_map).ok  # no structure on the border, both present
    # structures lie inside the field of view, and nothing is drawn outside it
    assert p.fov[p.label_map > 0].all()
    assert (p.image[~p.fov] == 0).all() and p.image[p.fov].mean() > 20


def test_appearance_is_ultrasound_like():
    p = make_phantom(3)
    outside = p.image[:5, :5]
    assert outside.max() == 0  # the fan leaves the corners black
    ps_mean = p.image[p.label_map == PS].mean()
    inner = p.label_map == FH
    import cv2

    core = cv2.erode(inner.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    assert ps_mean > 2 * p.image[core].mean()  # bright symphysis, darker head interior
    assert p.image[core].std() > 5  # speckle, not a flat fill


def test_mirrored_phantom_needs_the_mirrored_option():
    std, mir = make_phantom(3), make_phantom(3, mirrored=True)
    np.testing.assert_array_equal(mir.label_map, std.label_map[:, ::-1])
    np.testing.assert_array_equal(mir.fov, std.fov[:, ::-1])
    assert mir.aop < 90
    assert measure_mask(mir.label_map, orientation="mirrored").aop == pytest.approx(std.aop, abs=1e-9)


def test_non_square_sizes_and_custom_range():
    p = make_phantom(1, size=(200, 320), aop_range=(110, 130))
    assert p.image.shape == p.label_map.shape == (200, 320)
    assert 110 <= p.aop <= 130


def test_make_phantoms_is_deterministic_and_mirrors_a_share():
    a = make_phantoms(6, seed=5, mirrored_fraction=0.5, size=128)
    b = make_phantoms(6, seed=5, mirrored_fraction=0.5, size=128)
    assert [p.landmarks for p in a] == [p.landmarks for p in b]
    assert [p.params["mirrored"] for p in a] == [True] * 3 + [False] * 3
    assert len({p.params["seed"] for p in a}) == 6


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 32}, "at least 64"),
        ({"aop_range": (150, 100)}, "aop_range"),
        ({"aop_range": (10, 20)}, "no phantom"),
    ],
)
def test_impossible_requests_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_phantom(0, **kwargs)
