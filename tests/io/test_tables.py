import math

import numpy as np
import pytest

from partus.conventions import Status
from partus.errors import InputError
from partus.io import read_aop_csv, read_landmarks_csv, read_manifest, read_predictions_csv


@pytest.fixture
def csv_file(tmp_path):
    def write(text: str, name: str = "labels.csv"):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def test_iugc2025_training_csv(csv_file):
    path = csv_file(
        'Filename,PS1,PS2,FH1\na.png,"(146, 31)","(59.5,54)","( 214.25 , 68 )"\nb.png,"(1,2)","(3,4)","(5,6)"\n'
    )
    result = read_landmarks_csv(path)
    assert list(result) == ["a.png", "b.png"]
    assert result["a.png"].dtype == float
    np.testing.assert_array_equal(result["a.png"], [[146, 31], [59.5, 54], [214.25, 68]])


def test_aop_tangency_alias_bom_and_case(csv_file):
    path = csv_file('\ufefffilename, ps1 ,PS2,AOP Tangency\nx.png,"(1, 2)","(3, 4)","(5, 6)"\n')
    np.testing.assert_array_equal(read_landmarks_csv(path)["x.png"], [[1, 2], [3, 4], [5, 6]])


def test_extra_columns_kept(csv_file):
    path = csv_file('Filename,PS1,PS2,FH1,AOP,HSD,quality\na.png,"(1, 2)","(3, 4)","(5, 6)",120.5,30,good\n')
    row = read_predictions_csv(path)["a.png"]
    assert (row.aop, row.hsd, row.status, row.extras) == (120.5, 30.0, Status.OK, {"quality": "good"})
    assert row.to_measurement().landmarks.ps1 == (1.0, 2.0)


def test_not_measurable_rows_may_have_empty_points(csv_file):
    path = csv_file(
        "Filename,PS1,PS2,FH1,AOP,HSD,HSD_unit,status,reason\n"
        'a.png,,,,,,,not measurable,no head\nb.png,"(1, 2)","(3, 4)",,,,,Not Measurable,no tangent\n'
    )
    rows = read_predictions_csv(path)
    assert np.isnan(rows["a.png"].points).all() and rows["a.png"].reason == "no head"
    assert np.isnan(rows["b.png"].points[2]).all() and rows["b.png"].points[0].tolist() == [1, 2]
    assert math.isnan(rows["a.png"].aop) and rows["a.png"].status == Status.NOT_MEASURABLE
    assert rows["b.png"].to_measurement().landmarks is None


def test_header_only_gives_empty_dict(csv_file):
    assert read_landmarks_csv(csv_file("Filename,PS1,PS2,FH1\n")) == {}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", r"labels\.csv: file is empty"),
        ("\n\n", r"labels\.csv: file is empty \(no header line\)"),
        (
            'Filename,PS1,FH1\na.png,"(1, 2)","(5, 6)"\n',
            r"labels\.csv: missing column\(s\) PS2; found columns: Filename, PS1, FH1",
        ),
        ("Name,X\n", r"missing column\(s\) Filename, PS1, PS2, FH1; found columns: Name, X"),
        (
            'Filename,PS1,PS2,FH1\na.png,"(1, 2)","[3, 4]","(5, 6)"\n',
            r"labels\.csv: line 2, column 'PS2': cannot parse '\[3, 4\]' as a point",
        ),
        (
            'Filename,PS1,PS2,FH1\na.png,"(1, 2)","(3, 4)","(5, 6)"\nb.png,"(1, x)","(3, 4)","(5, 6)"\n',
            r"line 3, column 'PS1': cannot parse '\(1, x\)' as a point",
        ),
        ('Filename,PS1,PS2,FH1\na.png,"(1, 2)","(3, 4)","(nan, 6)"\n', r"line 2, column 'FH1': non-finite coordinate"),
        ('Filename,PS1,PS2,FH1\na.png,"(1, 2)","(3, 4)","(inf, 6)"\n', r"non-finite coordinate in '\(inf, 6\)'"),
        ('Filename,PS1,PS2,FH1\na.png,"(1, 2)","(3, 4)",\n', r"line 2, column 'FH1': empty point \(allowed only"),
        (
            'Filename,PS1,PS2,FH1\na.png,"(1, 2)","(3, 4)","(5, 6)"\na.png,"(1, 2)","(3, 4)","(5, 6)"\n',
            r"labels\.csv: duplicate Filename 'a\.png' \(lines 2 and 3\)",
        ),
        ('Filename,PS1,PS2,FH1\n,"(1, 2)","(3, 4)","(5, 6)"\n', r"line 2: empty 'Filename'"),
        ('Filename,PS1,PS2,FH1\na.png,"(1, 2)","(3, 4)"\n', r"line 2: expected 4 cells like the header, got 3"),
        ('Filename,PS1,PS2,FH1,AOP\na.png,"(1, 2)","(3, 4)","(5, 6)",nan\n', r"column 'AOP': non-finite number"),
        ('Filename,PS1,PS2,FH1,HSD\na.png,"(1, 2)","(3, 4)","(5, 6)",12mm\n', r"column 'HSD': cannot parse '12mm'"),
        ('Filename,PS1,PS2,FH1,status\na.png,"(1, 2)","(3, 4)","(5, 6)",maybe\n', r"column 'status': status must be"),
        ("Filename,PS1,PS2,FH1,AOP Tangency\n", r"column 'FH1' appears twice, as 'FH1' and 'AOP Tangency'"),
        ("Filename,PS1,PS1,PS2,FH1\n", r"header has a blank or repeated column name"),
    ],
)
def test_landmark_csv_errors(csv_file, text, match):
    with pytest.raises(InputError, match=match):
        read_landmarks_csv(csv_file(text))


def test_not_utf8(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("Filename,PS1,PS2,FH1\né.png\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin\.csv: not UTF-8 text"):
        read_landmarks_csv(path)


def test_missing_csv(tmp_path):
    with pytest.raises(InputError, match=r"none\.csv: file not found"):
        read_landmarks_csv(tmp_path / "none.csv")


def test_aop_csv(csv_file):
    assert read_aop_csv(csv_file("Filename,AOP\na.png,120.5\nb.png, 99 \n")) == {"a.png": 120.5, "b.png": 99.0}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("Filename,Angle\n", r"aop\.csv: missing column\(s\) AOP; found columns: Filename, Angle"),
        ("Filename,AOP\na.png,\n", r"line 2, column 'AOP': empty AoP"),
        ("Filename,AOP\na.png,inf\n", r"line 2, column 'AOP': non-finite number 'inf'"),
        ("Filename,AOP\na.png,abc\n", r"cannot parse 'abc' as a number"),
        ("Filename,AOP\na.png,1\na.png,2\n", r"duplicate Filename 'a\.png' \(lines 2 and 3\)"),
    ],
)
def test_aop_csv_errors(csv_file, text, match):
    with pytest.raises(InputError, match=match):
        read_aop_csv(csv_file(text, "aop.csv"))


def test_manifest(csv_file):
    path = csv_file("id,image,near_dup_cluster\n03744,images/03744.png,0\n03745,images/03745.png,1\n", "manifest.csv")
    assert read_manifest(path) == {"03744": "0", "03745": "1"}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("id,image\n", r"manifest\.csv: missing column\(s\) near_dup_cluster"),
        ("id,near_dup_cluster\n1,\n", r"line 2, column 'near_dup_cluster': empty cluster"),
        ("id,near_dup_cluster\n1,0\n1,0\n", r"duplicate id '1'"),
    ],
)
def test_manifest_errors(csv_file, text, match):
    with pytest.raises(InputError, match=match):
        read_manifest(csv_file(text, "manifest.csv"))
