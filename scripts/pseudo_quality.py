"""How good are the pseudo-labels a filter keeps? Labels the unlabelled part of a label-fraction fold again
with a round's teacher (``ROUND/teacher.onnx``) and compares kept and rejected labels with the annotation.

    python scripts/pseudo_quality.py runs/semi/L25_fold0/pseudo/round1 --fraction 0.25
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from label_fraction import ROOT, labelled_subset

from partus.config import load_config
from partus.data.unlabelled import Scan
from partus.geometry import angle_of_progression
from partus.predict import Predictor
from partus.pseudo import pseudo_label
from partus.train.fit import load_records, split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("round", type=Path)
    ap.add_argument("--fraction", type=float, default=0.25)
    ap.add_argument("--fold", type=int, default=0)
    args = ap.parse_args()
    cfg = load_config(ROOT / "configs" / "multitask.yaml")
    train, _ = split(load_records(cfg), args.fold, 5, cfg.train.seed, "blocks")
    _, unlab = labelled_subset(train, args.fraction, cfg.train.seed)
    labels = pseudo_label(Predictor(args.round / "teacher.onnx"), [Scan(r.name, r.image, str(r.group)) for r in unlab])
    gt = {r.name: r.points for r in unlab}
    groups: dict[str, list[float]] = {}
    for p in labels:
        if p.points is None:
            continue
        pts = p.points.copy()
        if p.mirrored:  # stored in the usual display; the annotation is of the scan as given
            pts[:, 0] = p.image.shape[1] - 1 - pts[:, 0]
        err = abs(angle_of_progression(*pts) - angle_of_progression(*gt[p.name]))
        groups.setdefault("kept" if p.keep else p.check, []).append(err)
    out = {k: {"n": len(v), "aop_mae": round(float(np.mean(v)), 2)} for k, v in groups.items()}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
