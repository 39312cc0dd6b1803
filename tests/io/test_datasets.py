import json
import math

import cv2
import numpy as np
import pytest

from partus.errors import InputError
from partus.io import (
    iter_iugc2024_frames,
    list_videos,
    parse_iugc2024_name,
    read_iugc2024_landmarks,
    read_psfhs,
    write_mask,
    write_mask_mha,
)


def _png_layout(root, ids, labels=None):
    for sub in ("images", "labels"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in ids:
        (root / "images" / f"{i}.png").write_bytes(b"x")
    for i in ids if labels is None else labels:
        write_mask(root / "labels" / f"{i}.png", np.zeros((2, 2), np.uint8))
    return root


def test_psfhs_png_layout_with_manifest(tmp_path):
    root = _png_layout(tmp_path, ["002", "001"])
    (root / "manifest.csv").write_text("id,near_dup_cluster\n001,5\n002,7\n")
    samples = read_psfhs(root)
    assert [(s.id, s.image_path.name, s.label_path.name, s.group) for s in samples] == [
        ("001", "001.png", "001.png", "5"),
        ("002", "002.png", "002.png", "7"),
    ]


def test_psfhs_mha_layout(tmp_path):
    for sub in ("image_mha", "label_mha"):
        write_mask_mha(tmp_path / sub / "03744.mha", np.zeros((2, 2), np.uint8))
    (s,) = read_psfhs(tmp_path)
    assert (s.id, s.image_path.parent.name, s.label_path.parent.name, s.group) == (
        "03744",
        "image_mha",
        "label_mha",
        None,
    )


def test_psfhs_unlabelled_allowed_on_request(tmp_path):
    root = _png_layout(tmp_path, ["1", "2"], labels=["1"])
    with pytest.raises(InputError, match=r"images without a mask in labels/: 2"):
        read_psfhs(root)
    assert [s.label_path is None for s in read_psfhs(root, require_labels=False)] == [False, True]


@pytest.mark.parametrize(
    ("setup", "kwargs", "match"),
    [
        (lambda r: None, {}, r"no PSFHS layout found: expected images/ \+ labels/"),
        (lambda r: (r / "images").mkdir(), {}, r"no \*\.png files in images/"),
        (lambda r: _png_layout(r, ["1"], labels=["1", "9"]), {}, r"masks without an image in labels/: 9"),
        (lambda r: _png_layout(r, ["1"]), {"layout": "jpg"}, r"layout: must be 'auto', 'png' or 'mha'"),
        (
            lambda r: (_png_layout(r, ["1", "2"]), (r / "manifest.csv").write_text("id,near_dup_cluster\n1,0\n")),
            {},
            r"manifest\.csv: ids missing from the manifest: 2",
        ),
    ],
)
def test_psfhs_errors(tmp_path, setup, kwargs, match):
    setup(tmp_path)
    with pytest.raises(InputError, match=match):
        read_psfhs(tmp_path, **kwargs)


def test_psfhs_root_not_a_directory(tmp_path):
    with pytest.raises(InputError, match=r"nowhere: not a directory"):
        read_psfhs(tmp_path / "nowhere")


# --- IUGC 2024 -------------------------------------------------------------------------------------

ENTRY = {
    "ps_points": [["69", "198"], ["84", "299"]],
    "hsd_point": ["147", "294"],
    "aop_tangency": ["174", "339"],
    "hsd": 63.198101237299845,
    "aop": 122.41001622248665,
}


def _json(tmp_path, data):
    path = tmp_path / "landmark.json"
    path.write_text(json.dumps(data))
    return path


def test_iugc2024_landmarks_yx_to_xy(tmp_path):
    result = read_iugc2024_landmarks(_json(tmp_path, {"_note": "ignored", "f.png": ENTRY}))
    assert list(result) == ["f.png"]
    entry = result["f.png"]
    np.testing.assert_array_equal(entry["landmarks"], [[299, 84], [198, 69], [339, 174]])
    np.testing.assert_array_equal(entry["hsd_point"], [294, 147])
    assert entry["aop"] == ENTRY["aop"] and entry["hsd"] == ENTRY["hsd"]


def test_iugc2024_landmarks_optional_fields(tmp_path):
    minimal = {"ps_points": [[1, 2], [3.5, 4]], "aop_tangency": ["5", "6"]}
    entry = read_iugc2024_landmarks(_json(tmp_path, {"f.png": minimal}))["f.png"]
    assert entry["hsd_point"] is None and math.isnan(entry["aop"]) and math.isnan(entry["hsd"])
    np.testing.assert_array_equal(entry["landmarks"], [[4, 3.5], [2, 1], [6, 5]])


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([1, 2], r"landmark\.json: expected a JSON object keyed by filename, got list"),
        ({"f.png": []}, r"entry 'f\.png': expected an object, got list"),
        ({"f.png": {"ps_points": [["1", "2"], ["3", "4"]]}}, r"entry 'f\.png': missing 'aop_tangency'"),
        ({"f.png": {**ENTRY, "ps_points": [["1", "2"]]}}, r"'ps_points': expected 2 \[y, x\] points"),
        ({"f.png": {**ENTRY, "aop_tangency": ["1", "x"]}}, r"'aop_tangency': expected a \[y, x\] pair of numbers"),
        ({"f.png": {**ENTRY, "aop_tangency": ["1", "2", "3"]}}, r"'aop_tangency': expected a \[y, x\] pair"),
        ({"f.png": {**ENTRY, "hsd_point": ["nan", "2"]}}, r"'hsd_point': non-finite coordinate"),
        ({"f.png": {**ENTRY, "aop": "big"}}, r"'aop': expected a number, got 'big'"),
        ({"f.png": {**ENTRY, "hsd": "inf"}}, r"'hsd': non-finite number"),
    ],
)
def test_iugc2024_landmark_errors(tmp_path, data, match):
    with pytest.raises(InputError, match=match):
        read_iugc2024_landmarks(_json(tmp_path, data))


def test_iugc2024_landmarks_not_json(tmp_path):
    path = tmp_path / "landmark.json"
    path.write_text("{oops")
    with pytest.raises(InputError, match=r"landmark\.json: not valid JSON"):
        read_iugc2024_landmarks(path)


def test_parse_iugc2024_name():
    assert parse_iugc2024_name("20190909T155747I1_0_6.png") == ("20190909T155747I1", 0, 6)
    assert parse_iugc2024_name("a_b_12_3") == ("a_b", 12, 3)
    with pytest.raises(InputError, match=r"frame\.png: not an IUGC 2024 frame name"):
        parse_iugc2024_name("frame.png")
    with pytest.raises(InputError, match=r"v_1_9\.png: unknown frame class 9"):
        parse_iugc2024_name("v_1_9.png")


def _video(path, n):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (16, 16))
    for i in range(n):
        writer.write(np.full((16, 16, 3), 40 * i, np.uint8))
    writer.release()


def test_iugc2024_videos(tmp_path):
    (tmp_path / "sub").mkdir()
    _video(tmp_path / "b.avi", 2)
    _video(tmp_path / "sub" / "a.avi", 3)
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_videos(tmp_path)] == ["b.avi", "a.avi"]  # sorted by full path
    frames = [(v, i) for v, i, f in iter_iugc2024_frames(tmp_path)]
    assert frames == [("b", 0), ("b", 1), ("a", 0), ("a", 1), ("a", 2)]
    assert [(v, i) for v, i, _ in iter_iugc2024_frames(tmp_path, step=2)] == [("b", 0), ("a", 0), ("a", 2)]


def test_iugc2024_videos_errors(tmp_path):
    with pytest.raises(InputError, match=r"no video files \(\.mp4, \.avi\) found"):
        iter_iugc2024_frames(tmp_path)
    with pytest.raises(InputError, match=r"nowhere: not a directory"):
        list_videos(tmp_path / "nowhere")
    _video(tmp_path / "a.avi", 1)
    with pytest.raises(InputError, match="step: must be a positive integer"):
        iter_iugc2024_frames(tmp_path, step=0)
