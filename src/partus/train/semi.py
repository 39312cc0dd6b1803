"""Self-training with pseudo-labels in progressive rounds (papers 1 and 2).

Round ``r`` of ``R``: the current model (first the supervised one) is exported to ONNX and labels the
unlabelled scans through :func:`partus.pseudo.pseudo_label` (keep/reject with reasons); the surest
``fractions[r]`` of the kept labels (default ``r / R``: subsets added in rounds) join the annotated scans
with loss weight ``weight`` (0.5, paper 2); a fresh model trains on both with the config's schedule and
becomes the next round's labeller. Every round is a folder (``roundK/pseudo`` holds its labels in the
psfhs-dev layout, ``roundK/`` its checkpoints); a finished round is reused when the run is repeated.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..config import Config
from ..data.records import PSEUDO, Record
from ..data.unlabelled import Scan
from ..io import write_json
from .fit import FitResult, fit

__all__ = ["pseudo_records", "self_train"]


def pseudo_records(labels, weight: float) -> list[Record]:
    """Training records from kept :class:`~partus.pseudo.PseudoLabel` objects."""
    return [Record(PSEUDO + p.name, p.image, np.asarray(p.points, float), p.label_map, PSEUDO + p.group, weight)
            for p in labels if p.keep]  # fmt: skip


def self_train(
    cfg: Config,
    out_dir: str | Path,
    labelled: Sequence[Record],
    unlabelled: Sequence[np.ndarray] | Sequence[Scan],
    *,
    teacher: str | Path,
    names: Sequence[str] | None = None,
    rounds: int | None = None,
    progress: bool = True,
    resume: bool = True,
) -> tuple[FitResult, dict]:
    """Run the rounds (``rounds`` or ``cfg.semi.rounds``) from the ``teacher`` checkpoint.

    A round finished before (``roundK/round.json``) is reused when ``resume`` and it was made from the same
    teacher file, scans and configuration. Returns the last round's :class:`FitResult` and a summary per
    round (scans kept, used, rejected by check).
    """
    from ..export import export_onnx
    from ..predict import Predictor
    from ..pseudo import pseudo_label, write_pseudo_labels

    s = cfg.semi
    rounds = s.rounds if rounds is None else rounds
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    fractions = s.fractions or [(r + 1) / rounds for r in range(rounds)]
    if len(fractions) != rounds or not all(0 < f <= 1 for f in fractions):
        raise ValueError(f"semi.fractions must be {rounds} numbers in (0, 1], got {fractions}")
    scans = [u if isinstance(u, Scan) else Scan(names[i] if names else f"scan{i:05d}", u, f"scan{i:05d}")
             for i, u in enumerate(unlabelled)]  # fmt: skip
    out = Path(out_dir)
    info: list[dict] = []
    res: FitResult | None = None
    for r in range(rounds):
        stage = out / f"round{r + 1}"
        marker = stage / "round.json"
        key = _fingerprint(teacher, scans, cfg, fractions[r])
        done = json.loads(marker.read_text()) if resume and marker.is_file() else {}
        if done.get("fingerprint") == key and Path(done.get("checkpoint", "")).is_file():
            info.append(done)
            teacher = Path(done["checkpoint"])
            res = None
            continue
        stage.mkdir(parents=True, exist_ok=True)
        onnx = stage / "teacher.onnx"
        export_onnx(teacher, onnx)
        labels = pseudo_label(Predictor(onnx), scans)
        counts = write_pseudo_labels(stage / "pseudo", labels)
        kept = sorted((p for p in labels if p.keep), key=lambda p: p.score)
        used = kept[: int(round(fractions[r] * len(kept)))]
        res = fit(cfg, stage, records=[*labelled, *pseudo_records(used, s.weight)], resume=resume, progress=progress)
        done = {"round": r + 1, **counts, "used": len(used), "weight": s.weight, "checkpoint": str(res.checkpoint),
                "epochs": res.epochs, "seconds": round(res.seconds, 1), "fingerprint": key}  # fmt: skip
        write_json(marker, done)
        info.append(done)
        teacher = res.checkpoint
    if res is None:  # the last round was done before
        from .module import LandmarkModule

        ckpt = Path(teacher)
        module = LandmarkModule.load_from_checkpoint(ckpt, map_location="cpu")
        res = FitResult(stage, ckpt, module, list(labelled), [], info[-1]["seconds"], info[-1]["epochs"])
    return res, {"rounds": [{k: v for k, v in d.items() if k != "fingerprint"} for d in info]}


def _fingerprint(teacher: str | Path, scans: Sequence[Scan], cfg: Config, fraction: float) -> str:
    """What a round depends on: the teacher file (path, size, time), the scans' names and the config."""
    st = Path(teacher).stat()
    blob = json.dumps([str(teacher), st.st_size, st.st_mtime_ns, [sc.name for sc in scans], fraction,
                       cfg.model_dump(mode="json")], sort_keys=True, default=str)  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
