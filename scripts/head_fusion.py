"""How should the shipped network's three landmark estimates be fused? Out of fold on the blocks CV.

    python scripts/head_fusion.py [--cv runs/sweep/mt_strong_blocks] [--variants plain,fan,...] [--cache F.pkl]

Each fold's last checkpoint is exported to ONNX and run on its held-out scans (plain and the
acquisition-shift suite) through :class:`partus.predict.Predictor`; for every scan the estimates of the
segmentation rule, the heatmap head and the DSNT head are kept, and each fusion rule's AoP error is
reported: overall, per shift, per fold and per ground-truth AoP band. The shipped rule is
:data:`partus.decode.FUSION` (the median); ``scripts/ship_model.py --figures-only`` gives its figures with the
verdict.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: rule -> (weights of (segmentation rule, heatmap, DSNT), fusion method, FH1 tangent radius in px). With a
#: radius, FH1 is then moved to the official tangent from the fused PS1 (vertex)/PS2 to the predicted head
#: mask, searched among the contour points within that radius of the fused FH1 (inf: the whole contour).
#: AoP is the largest angle over head contour points, so an FH1 that slips along the contour can only lower
#: it; the radius bounds how far a poor mask can move it.
RULES = {
    "segmentation": ((1, 0, 0), "mean", 0),
    "heatmap": ((0, 1, 0), "mean", 0),
    "dsnt": ((0, 0, 1), "mean", 0),
    "heatmap+dsnt": ((0, 1, 1), "mean", 0),
    "equal": ((1, 1, 1), "mean", 0),
    "seg 0.5": ((0.5, 1, 1), "mean", 0),
    "median": ((1, 1, 1), "median", 0),
    "heatmap+dsnt, FH1 by tangent": ((0, 1, 1), "mean", np.inf),
    "seg 0.5, FH1 by tangent": ((0.5, 1, 1), "mean", np.inf),
    "median, FH1 by tangent": ((1, 1, 1), "median", np.inf),
    "median, FH1 by tangent within 4 px": ((1, 1, 1), "median", 4),
    "median, FH1 by tangent within 8 px": ((1, 1, 1), "median", 8),
    "median, FH1 by tangent within 16 px": ((1, 1, 1), "median", 16),
}
BANDS = ((0, 90), (90, 110), (110, 130), (130, 181))


def estimates(cv: Path, variants: list[str]) -> list[dict]:
    """Per held-out scan and variant: the three heads' landmarks (in the scan's pixels) and the truth."""
    sys.path.insert(0, str(Path(__file__).parent))
    from ship_model import CONFIG, _open_limits, final_checkpoint, finished

    from partus.config import load_config
    from partus.conventions import FH
    from partus.data.shift import apply_shift
    from partus.export import export_onnx
    from partus.geometry import largest_contour, measure_mask
    from partus.predict import Predictor
    from partus.train.fit import load_records, split

    cfg = load_config(REPO / "configs" / f"{CONFIG}.yaml")
    records = load_records(cfg)
    index = {r.name: i for i, r in enumerate(records)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in sorted(int(p.name[4:]) for p in cv.glob("fold*") if finished(p)):
            export_onnx(final_checkpoint(cv / f"fold{k}"), Path(tmp) / "m.onnx")
            pred = Predictor(Path(tmp) / "m.onnx", limits=_open_limits())
            model = pred.models[0]
            _, val = split(records, k, 5, cfg.train.seed, cfg.train.split)
            for v in variants:
                for r in val:
                    if v == "plain":
                        image, gt = r.image, r.points
                    else:
                        s = apply_shift(v, r.image, r.points, seed=cfg.train.seed, index=index[r.name])
                        if not s.valid:
                            continue
                        image, gt = s.image, s.points
                    p = pred.predict_one(image, orientation="standard")  # the heads, in the usual display
                    m = measure_mask(p.label_map, allow_border=True) if p.label_map is not None else None
                    seg = m.landmarks if m is not None and m.ok else None  # as the predictor uses it
                    outs = model(pred_input(pred, image), False)
                    heads = [None if seg is None else seg.to_array()]  # type: ignore[union-attr]
                    heads += [model.landmarks(outs[h][0], image.shape, h)[0] for h in ("heatmap", "dsnt")]
                    has_fh = p.label_map is not None and (p.label_map == FH).any()
                    fh = largest_contour(p.label_map == FH) if has_fh else None  # for the tangent rules
                    rows.append({"fold": k, "variant": v, "heads": heads, "fh": fh, "gt": np.asarray(gt, float)})
            print(f"fold {k} done", flush=True)
    return rows


def pred_input(pred, image: np.ndarray) -> np.ndarray:
    from partus.preprocess import resize_image, to_input

    return to_input(resize_image(image, pred.size)[None])


def fused(r: dict, w: tuple, method: str, radius: float, untouched: list | None = None) -> np.ndarray | None:
    """One scan's landmarks under a rule: the heads fused, FH1 optionally by the mask tangent near it.

    A scan whose head contour has no point within ``radius`` of the fused FH1 keeps it (appended to
    ``untouched``)."""
    from partus.decode import fuse_landmarks
    from partus.geometry import tangent_point

    use = [(wi, h) for wi, h in zip(w, r["heads"], strict=True) if wi > 0 and h is not None]
    if not use:
        return None
    p = fuse_landmarks([h for _, h in use], [wi for wi, _ in use], method)
    if radius > 0 and r.get("fh") is not None and np.isfinite(p).all():
        fh = np.asarray(r["fh"], float).reshape(-1, 2)
        near = fh[np.hypot(*(fh - p[2]).T) <= radius]
        if len(near):
            p[2] = tangent_point(p[0], p[1], near)
        elif untouched is not None:
            untouched.append(r)
    return p


def report(rows: list[dict]) -> None:
    from partus.geometry import angle_of_progression, aop_rows

    variants = list(dict.fromkeys(r["variant"] for r in rows))
    folds = sorted({r["fold"] for r in rows})
    print("| rule | " + " | ".join(variants) + " | shift mean | per fold (plain) | bands MAE/bias (plain) |")
    print("|---" * (len(variants) + 4) + "|")
    notes = []
    for name, (w, method, radius) in RULES.items():
        err: dict[str, list] = {}
        untouched: list = []
        for r in rows:
            if (p := fused(r, w, method, radius, untouched)) is None:
                continue
            gt = angle_of_progression(*r["gt"])
            if np.isnan(aop := aop_rows(p)[0]):  # a head's degenerate points: no angle, left out
                continue
            err.setdefault(r["variant"], []).append((r["fold"], gt, aop - gt))
        mae = {v: np.mean([abs(e) for *_, e in err[v]]) for v in variants}
        shifts = [mae[v] for v in variants if v != "plain"]
        plain = np.array(err.get("plain", [(0, 0, np.nan)]))
        per_fold = " / ".join(f"{np.abs(plain[plain[:, 0] == k, 2]).mean():.2f}" for k in folds)
        bands = " / ".join(
            f"{np.abs(plain[m, 2]).mean():.1f} ({plain[m, 2].mean():+.1f})"
            for lo, hi in BANDS if (m := (plain[:, 1] >= lo) & (plain[:, 1] < hi)).any()
        )  # fmt: skip
        print(f"| {name} | " + " | ".join(f"{mae[v]:.2f}" for v in variants)
              + f" | {np.mean(shifts) if shifts else float('nan'):.2f} | {per_fold} | {bands} |")  # fmt: skip
        if untouched:
            notes.append(f"{name}: FH1 kept on {len(untouched)} of {len(rows)} scans (no contour point that near)")
    print("\n".join(notes))


def main() -> int:
    from partus.data.shift import SHIFTS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cv", type=Path, default=REPO / "runs" / "sweep" / "mt_strong_blocks")
    ap.add_argument("--variants", default="plain," + ",".join(SHIFTS), help="plain and/or shift names")
    ap.add_argument("--cache", type=Path, help="pickle of the per-scan estimates: read if it exists, else written")
    a = ap.parse_args()
    key = {"cv": str(a.cv.resolve()), "variants": a.variants}
    stored = pickle.loads(a.cache.read_bytes()) if a.cache is not None and a.cache.is_file() else None
    if stored is not None and stored.get("key") != key:
        raise SystemExit(f"{a.cache} holds the estimates of {stored.get('key')}, not {key}: pass another --cache")
    rows = stored["rows"] if stored is not None else estimates(a.cv, a.variants.split(","))
    if a.cache is not None and stored is None:
        a.cache.write_bytes(pickle.dumps({"key": key, "rows": rows}))
    report(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
