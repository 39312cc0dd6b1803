"""RowJournal: rows committed in atomic parts, kept across an unfinished run, merged in order at the end."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from partus.errors import InputError
from partus.io import read_predictions_csv, write_predictions_csv
from partus.io.journal import RowJournal
from partus.measurement import Landmarks, Measurement


def _m(i: int) -> Measurement:
    pts = np.array([[10.0 + i, 20.0], [30.0, 40.125 + i], [50.0, 60.0]])
    return Measurement(landmarks=Landmarks.from_array(pts), aop=100.0 + i / 3, hsd=20.0 + i)


def _rows(n: int, prefix: str = "s"):
    return [(f"{prefix}{i:03d}.png", _m(i)) for i in range(n)]


def test_finish_writes_the_same_csv_as_the_one_shot_writer_in_the_given_order(tmp_path):
    rows = _rows(7) + [("bad.png", Measurement.not_measurable("could not read the file: truncated"))]
    with RowJournal(tmp_path / "p.csv", every_rows=3) as j:
        for r in reversed(rows):  # committed in another order than the output's
            j.add([r])
        assert len(list(j.folder.glob("part-*.csv"))) == 2  # 3 + 3 committed, 2 pending
        order = {name: i for i, (name, _) in enumerate(rows)}
        j.finish(order.__getitem__)
    write_predictions_csv(tmp_path / "ref.csv", rows)
    assert (tmp_path / "p.csv").read_text() == (tmp_path / "ref.csv").read_text()
    assert not (tmp_path / "p.csv.partial").exists()


def test_unfinished_run_needs_resume_and_resume_keeps_its_rows(tmp_path):
    out = tmp_path / "p.csv"
    j = RowJournal(out, every_rows=2)
    j.add(_rows(5)[:2])
    j.add(_rows(5)[2:3])  # pending, never committed: lost with the "killed" job
    j.close()
    assert not out.exists()
    with pytest.raises(InputError, match="--resume"):
        RowJournal(out)
    with RowJournal(out, resume=True) as j2:
        assert j2.keys == {"s000.png", "s001.png"}
        with pytest.raises(InputError, match="already committed"):
            j2.add([("s001.png", _m(1))])
        j2.add(_rows(5)[2:])
        j2.finish()
    assert list(read_predictions_csv(out)) == [f"s{i:03d}.png" for i in range(5)]


def test_resume_of_a_finished_output_adds_only_new_rows(tmp_path):
    out = tmp_path / "p.csv"
    with RowJournal(out) as j:
        j.add(_rows(3))
        j.finish()
    with RowJournal(out, resume=True) as j:
        assert j.keys == {"s000.png", "s001.png", "s002.png"}
        j.add([("new.png", _m(9))])
        j.finish()
    assert list(read_predictions_csv(out)) == ["s000.png", "s001.png", "s002.png", "new.png"]


def test_unknown_names_follow_in_commit_order(tmp_path):
    with RowJournal(tmp_path / "p.csv") as j:
        j.add([("b", _m(1)), ("x", _m(2)), ("a", _m(3))])
        j.finish({"a": 0, "b": 1}.__getitem__)
    assert list(read_predictions_csv(tmp_path / "p.csv")) == ["a", "b", "x"]


def test_a_second_job_on_the_same_output_is_refused(tmp_path):
    with RowJournal(tmp_path / "p.csv"):
        with pytest.raises(InputError, match="another partus job"):
            RowJournal(tmp_path / "p.csv", resume=True)


def test_a_run_that_commits_nothing_leaves_no_folder_and_a_torn_temp_file_is_ignored(tmp_path):
    out = tmp_path / "p.csv"
    RowJournal(out).close()
    assert not (tmp_path / "p.csv.partial").exists()
    j = RowJournal(out, every_rows=1)
    j.add(_rows(1))
    (j.folder / ".abc.tmp.part-000002.csv").write_text("Filename,PS1\nhalf")  # a kill during a commit
    j.close()
    with RowJournal(out, resume=True) as j2:
        assert j2.keys == {"s000.png"}


def test_a_damaged_part_is_reported_not_merged(tmp_path):
    out = tmp_path / "p.csv"
    j = RowJournal(out, every_rows=1)
    j.add(_rows(1))
    j.close()
    part = next((tmp_path / "p.csv.partial").glob("part-*.csv"))
    part.write_text(part.read_text() + "only,three,cells\n")
    with pytest.raises(InputError, match="3 cells"):
        RowJournal(out, resume=True)


def test_parquet_output_keeps_full_precision_and_the_csv_values(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    rows = _rows(4) + [("bad.png", Measurement.not_measurable("blank image"))]
    with RowJournal(tmp_path / "p.parquet", every_rows=2) as j:
        for r in rows:
            j.add([r])
        j.finish()
    table = pq.read_table(tmp_path / "p.parquet").to_pylist()
    assert [r["Filename"] for r in table] == [n for n, _ in rows]
    assert table[1]["PS2_y"] == 41.125 and table[1]["AOP"] == 100.0 + 1 / 3
    assert math.isnan(table[4]["PS1_x"]) and table[4]["status"] == "not measurable" and table[4]["HSD_unit"] == ""
    write_predictions_csv(tmp_path / "ref.csv", rows)
    with open(tmp_path / "ref.csv", newline="") as fh:
        ref = list(csv.DictReader(fh))
    assert [float(r["AOP"]) for r in ref[:4]] == [round(t["AOP"], 6) for t in table[:4]]


def test_a_resume_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "p.csv"
    j = RowJournal(out, job={"model": "a@1", "orientation": "auto"}, every_rows=1)
    j.add(_rows(1))
    j.close()
    with pytest.raises(InputError, match="other settings.*model"):
        RowJournal(out, resume=True, job={"model": "b@2", "orientation": "auto"})
    with RowJournal(out, resume=True, job={"model": "a@1", "orientation": "auto"}) as j2:
        assert j2.keys == {"s000.png"}


def test_one_add_is_queued_whole_or_not_at_all(tmp_path):
    with RowJournal(tmp_path / "p.csv") as j:
        j.add([("x", _m(0))])
        with pytest.raises(InputError, match="already committed"):
            j.add([("w#f00000", _m(1)), ("w#f00001", _m(2)), ("x", _m(3))])
        assert j.keys == {"x"}
        j.finish()
    assert list(read_predictions_csv(tmp_path / "p.csv")) == ["x"]


def test_the_folder_goes_only_with_the_lock_held_and_a_folder_is_not_an_output(tmp_path):
    out = tmp_path / "p.csv"
    j = RowJournal(out, every_rows=1)
    j.add(_rows(2))
    j.finish()
    assert not (tmp_path / "p.csv.partial").exists() and len(read_predictions_csv(out)) == 2
    with RowJournal(out, resume=True) as j2:  # the finished output's rows, nothing lost
        assert j2.keys == {"s000.png", "s001.png"}
        j2.finish()
    assert len(read_predictions_csv(out)) == 2
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        RowJournal(tmp_path / "dir.csv")


def test_an_old_or_foreign_output_is_refused_before_it_is_copied(tmp_path):
    out = tmp_path / "p.csv"
    out.write_text('Filename,PS1,PS2,FH1\na.png,"(1, 2)","(3, 4)","(5, 6)"\n')
    with pytest.raises(InputError, match="move it away"):
        RowJournal(out, resume=True)
    assert not (tmp_path / "p.csv.partial").exists()  # nothing left that would block the next run
