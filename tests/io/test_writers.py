import json
import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partus import Landmarks, Measurement
from partus.conventions import Status
from partus.errors import InputError
from partus.io import (
    PredictionRow,
    read_label_map,
    read_landmarks_csv,
    read_medical,
    read_predictions_csv,
    write_json,
    write_mask,
    write_predictions_csv,
)

POINTS = [[146.0, 31.0], [59.5, 54.25], [214.125, 68.0]]


def test_predictions_csv_format(tmp_path):
    ok = Measurement(landmarks=Landmarks.from_array(POINTS), aop=136.6402314, hsd=30.0, hsd_unit="px")
    bad = Measurement.not_measurable("no fetal head, found")
    path = write_predictions_csv(tmp_path / "out" / "pred.csv", {"a.png": ok, "b.png": bad})
    assert path.read_text().splitlines() == [
        "Filename,PS1,PS2,FH1,AOP,HSD,HSD_unit,status,reason,standard_plane",
        'a.png,"(146, 31)","(59.5, 54.25)","(214.12, 68)",136.640231,30,px,ok,,',
        'b.png,,,,,,,not measurable,"no fetal head, found",',
    ]


def test_standard_plane_probability_round_trips(tmp_path):
    m = Measurement(landmarks=Landmarks.from_array(POINTS), aop=120.0, extras={"standard_plane": 0.987654})
    off = Measurement.not_measurable("not a standard plane", extras={"standard_plane": 0.01})
    path = write_predictions_csv(tmp_path / "p.csv", [("a.png", m), ("b.png", off), ("c.png", POINTS)])
    last = [line.rsplit(",", 1)[1] for line in path.read_text().splitlines()]
    assert last == ["standard_plane", "0.9877", "0.01", ""]
    back = read_predictions_csv(path)
    assert back["a.png"].standard_plane == 0.9877 and np.isnan(back["c.png"].standard_plane)


def test_predictions_csv_round_trip(tmp_path):
    rows = [
        ("a.png", Measurement(landmarks=Landmarks.from_array(POINTS), aop=120.25, hsd=12.5, hsd_unit="mm")),
        ("b.png", Measurement.not_measurable("PS not found")),
        ("c.png", Measurement.not_measurable("no tangent", landmarks=Landmarks.from_array(POINTS))),
        ("d.png", np.array(POINTS).ravel()),
    ]
    path = write_predictions_csv(tmp_path / "p.csv", rows)
    back = read_predictions_csv(path)
    assert list(back) == ["a.png", "b.png", "c.png", "d.png"]
    a = back["a.png"]
    assert (a.aop, a.hsd, a.hsd_unit, a.status, a.reason) == (120.25, 12.5, "mm", Status.OK, "")
    np.testing.assert_array_equal(a.points, [[146, 31], [59.5, 54.25], [214.12, 68]])
    assert np.isnan(back["b.png"].points).all() and back["b.png"].reason == "PS not found"
    assert back["c.png"].status == Status.NOT_MEASURABLE and np.isfinite(back["c.png"].points).all()
    assert math.isnan(back["d.png"].aop) and back["d.png"].hsd_unit == ""
    # reading and writing again is byte-identical
    again = write_predictions_csv(tmp_path / "again.csv", back)
    assert again.read_text() == path.read_text()


coordinate = st.floats(min_value=-5000, max_value=5000, allow_nan=False, allow_infinity=False)


def test_partial_points_of_not_measurable_row_survive(tmp_path):
    src = tmp_path / "src.csv"
    src.write_text('Filename,PS1,PS2,FH1,status,reason\na.png,"(1, 2)","(3, 4)",,not measurable,no tangent\n')
    back = read_predictions_csv(write_predictions_csv(tmp_path / "out.csv", read_predictions_csv(src)))
    np.testing.assert_array_equal(back["a.png"].points[:2], [[1, 2], [3, 4]])
    assert np.isnan(back["a.png"].points[2]).all() and back["a.png"].reason == "no tangent"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(coordinate, min_size=6, max_size=6), min_size=1, max_size=5), st.integers(0, 4))
def test_csv_round_trip_property(tmp_path_factory, points, decimals):
    folder = tmp_path_factory.mktemp("prop")
    rows = {f"img{i}.png": np.reshape(p, (3, 2)) for i, p in enumerate(points)}
    path = write_predictions_csv(folder / "p.csv", rows, decimals=decimals)
    back = read_landmarks_csv(path)
    for name, pts in rows.items():
        expected = np.array([[float(f"{v:.{decimals}f}") for v in row] for row in pts])
        np.testing.assert_array_equal(back[name], expected)
        assert np.all(np.abs(back[name] - pts) <= 0.5 * 10.0**-decimals + 1e-9)
    rewritten = write_predictions_csv(folder / "q.csv", back, decimals=decimals)
    assert rewritten.read_text() == path.read_text()


@pytest.mark.parametrize(
    ("rows", "kwargs", "match"),
    [
        ({"a.png": [[1, 2], [3, 4]]}, {}, r"rows\['a\.png'\]: expected a Measurement, Landmarks or \(3, 2\) points"),
        ({"a.png": [[1, 2], [3, 4], [5, np.nan]]}, {}, r"rows\['a\.png'\]: .*must be finite"),
        ({"a.png": Measurement(landmarks=None)}, {}, r"status is 'ok' but landmarks are missing"),
        (
            {"a.png": PredictionRow("a.png", np.full((3, 2), np.nan))},
            {},
            r"rows\['a\.png'\]: status is 'ok' but landmarks are missing or not finite",
        ),
        ({"a.png": PredictionRow("a.png", np.zeros((2, 2)))}, {}, r"points must have shape \(3, 2\), got \(2, 2\)"),
        ([("a.png", POINTS), ("a.png", POINTS)], {}, r"rows: filename 'a\.png' is repeated"),
        ([("", POINTS)], {}, r"rows: filename '' is empty"),
        ([("a.png",)], {}, r"rows: item 0: expected a \(filename, measurement\) pair"),
        ({"a.png": POINTS}, {"decimals": -1}, r"decimals: must be an integer in 0\.\.12"),
        ({"a.png": POINTS}, {"value_decimals": 2.5}, r"value_decimals: must be an integer"),
    ],
)
def test_predictions_csv_errors(tmp_path, rows, kwargs, match):
    with pytest.raises(InputError, match=match):
        write_predictions_csv(tmp_path / "p.csv", rows, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_write_json(tmp_path):
    m = Measurement.not_measurable("no head")
    obj = {"a": np.float32(1.5), "b": [math.nan, math.inf, np.int64(3)], 4: np.arange(3), "m": m, "t": (1, 2)}
    path = write_json(tmp_path / "r.json", obj)
    data = json.loads(path.read_text())
    assert data["a"] == 1.5 and data["b"] == [None, None, 3] and data["4"] == [0, 1, 2] and data["t"] == [1, 2]
    assert data["m"]["status"] == "not measurable" and data["m"]["aop_deg"] is None
    assert "NaN" not in path.read_text()


def test_write_json_errors(tmp_path):
    with pytest.raises(InputError, match=r"obj\['x'\]\[1\]: cannot be written as JSON: unsupported type object"):
        write_json(tmp_path / "r.json", {"x": [1, object()]})
    with pytest.raises(InputError, match=r"JSON object keys must be strings or integers"):
        write_json(tmp_path / "r.json", {(1, 2): 3})
    assert list(tmp_path.iterdir()) == []


LABELS = np.array([[0, 1, 1], [2, 2, 2], [0, 2, 0]], np.uint8)


@pytest.mark.parametrize(
    ("kwargs", "stored"),
    [
        ({}, {0: 0, 1: 1, 2: 2}),
        ({"scheme": "iugc2024"}, {0: 0, 1: 7, 2: 8}),
        ({"for_viewing": True}, {0: 0, 1: 127, 2: 255}),
    ],
)
def test_write_mask_png_round_trip(tmp_path, kwargs, stored):
    path = write_mask(tmp_path / "m.png", LABELS, **kwargs)
    on_disk = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert on_disk.dtype == np.uint8 and np.array_equal(on_disk, np.vectorize(stored.get)(LABELS))
    assert np.array_equal(read_label_map(path), LABELS)


def test_write_mask_mha_with_spacing(tmp_path):
    path = write_mask(tmp_path / "m.mha", LABELS, spacing=(0.1, 0.2))
    data = read_medical(path)
    assert np.array_equal(data.pixels, LABELS) and data.pixel_spacing == pytest.approx((0.1, 0.2))
    assert np.array_equal(read_label_map(path, scheme="psfhs"), LABELS)


@pytest.mark.parametrize(
    ("name", "label_map", "kwargs", "match"),
    [
        ("m.jpg", LABELS, {}, r"m\.jpg: unsupported mask extension"),
        ("m.png", LABELS, {"spacing": (1, 1)}, r"spacing: a PNG mask cannot store a pixel spacing"),
        ("m.png", LABELS * 3, {}, r"label_map: values must be partus labels 0, 1, 2; found \[0, 3, 6\]"),
        ("m.png", LABELS.astype(float), {}, r"label_map: must hold integers"),
        ("m.png", LABELS[0], {}, r"label_map: must be a non-empty 2-D array"),
        ("m.png", LABELS, {"scheme": "auto"}, r"scheme: must be 'psfhs' or 'iugc2024' when writing"),
    ],
)
def test_write_mask_errors(tmp_path, name, label_map, kwargs, match):
    with pytest.raises(InputError, match=match):
        write_mask(tmp_path / name, label_map, **kwargs)
    assert list(tmp_path.iterdir()) == []
