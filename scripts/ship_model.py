"""Ship the default model: export the all-data checkpoint into the package, run every cross-validation
fold through the shipped inference path with the shift-aware evaluation, and write the model card.

    partus train configs/multitask.yaml --out runs/multitask_ema/all --set train.threads=2   # all 658 scans
    python scripts/sweep.py --only mt_ema_blocks --parallel 1 --set train.threads=2   # blocks CV folds
    python scripts/plane_head.py --cv runs/sweep/mt_ema_blocks \
        --final runs/multitask_ema/all/checkpoints/last.ckpt --out runs/plane_ema  # + standard-plane head
    python scripts/ship_model.py --train-minutes 16.4

The shipped file is ``runs/plane_ema/multitask_plane.ckpt`` when it exists (the all-data network plus its
standard-plane head, whose out-of-fold figures come from ``runs/plane_ema/plane_head.json``), else the
all-data checkpoint itself.

The held-out check exports each fold's *last* checkpoint (as the shipped model is the last epoch of its
all-data run: no selection on held-out scans) to ONNX and runs :class:`partus.predict.Predictor` with
the shipped verdict limits on the fold's validation scans: plain, the acquisition-shift suite, mirrored
(default options, i.e. ``orientation="auto"``), and the negative proxies (:mod:`partus.data.negatives`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import pickle
import re
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "src" / "partus" / "weights"
CONFIG = "multitask"
FILE = "multitask.onnx"
CV_DIR = REPO / "runs" / "sweep" / "mt_ema_blocks"
PLANE_DIR = REPO / "runs" / "plane_ema"
FINAL = REPO / "runs" / "multitask_ema" / "all" / "checkpoints" / "last.ckpt"


#: Verdict floors off: every check but the confidence floors and the members' agreement stays on, so the
#: floors can be applied afterwards to the stored confidences (one pass serves calibration and figures).
def _open_limits():
    from dataclasses import replace

    from partus.quality import DEFAULT_LIMITS

    return replace(DEFAULT_LIMITS, min_confidence=0.0, min_peak=0.0, min_dsnt_mass=0.0, min_refiner_mass=0.0,
                   max_aop_spread=1e9)  # fmt: skip


def final_checkpoint(fold_dir: Path) -> Path:
    """A fold's final model: the last checkpoint of its last error-weighted fine-tuning round, else of the run."""
    rounds = [p for p in fold_dir.glob("finetune*/checkpoints/last.ckpt") if p.parts[-3][8:].isdigit()]
    return max(rounds, key=lambda p: int(p.parts[-3][8:])) if rounds else fold_dir / "checkpoints" / "last.ckpt"


def ship_refiner(source: Path, minutes: float) -> dict:
    """Export the refiner ``source`` beside the shipped network; what the model card says of it."""
    from partus.refine import refiner_path
    from partus.train.refine import export_refiner

    target = refiner_path(WEIGHTS / FILE)
    meta = export_refiner(source, target)
    data = target.read_bytes()
    where = source.parent.relative_to(REPO) if source.parent.is_relative_to(REPO) else source.parent
    command = f"python scripts/ps_refine.py --all --out {where}"
    return {"file": target.name, "meta": meta, "sha": hashlib.sha256(data).hexdigest(), "kb": len(data) / 1024,
            "minutes": minutes, "command": command}  # fmt: skip


def finished(fold_dir: Path) -> bool:
    """A fold whose training ended (``fold.json``, written by ``partus cv`` and ``sweep.py``; ``shift.npz`` when
    only the shift evaluation's output is left)."""
    return (fold_dir / "fold.json").is_file() or (fold_dir / "shift.npz").is_file()


def _inference_fingerprint() -> str:
    """Changes with the inference code, so cached rows of an older fusion or verdict are not reused."""
    import partus

    src = Path(partus.__file__).parent
    parts = [
        (src / f).read_bytes()
        for f in ("predict.py", "members.py", "refine.py", "decode.py", "quality.py", "geometry.py")
    ]
    return hashlib.sha256(b"".join(parts)).hexdigest()[:16]


def collect(cv_dir: Path | list[Path], folds: list[int]) -> list[dict]:
    """One row per (fold, variant, scan): prediction, ground truth, open-limit verdict, confidences by kind.

    Several CV folders (same split, e.g. seeds) make each fold's prediction their ONNX ensemble (paper 1)."""
    from partus.config import load_config
    from partus.data.negatives import NEGATIVE_PROXIES, negative_proxy
    from partus.data.shift import SHIFTS, apply_shift, mirror
    from partus.export import export_onnx
    from partus.geometry import measure_mask
    from partus.io import atomic_write
    from partus.predict import Predictor
    from partus.train.fit import load_records, split

    cfg = load_config(REPO / "configs" / f"{CONFIG}.yaml")
    records = load_records(cfg)
    index = {r.name: i for i, r in enumerate(records)}
    rows, fingerprint = [], _inference_fingerprint()
    with tempfile.TemporaryDirectory() as tmp:
        dirs = cv_dir if isinstance(cv_dir, list) else [cv_dir]
        for k in folds:
            ckpts = [final_checkpoint(d / f"fold{k}") for d in dirs]
            name = "ship_rows.pkl" if len(dirs) == 1 else f"ship_rows_{'+'.join(d.name for d in dirs)}.pkl"
            cache = dirs[0] / f"fold{k}" / name  # one fold's rows, reused while checkpoints and code stand
            refiners = [p for d in dirs if (p := d / f"fold{k}" / "refiner.pt").is_file()]
            key = fingerprint + "".join(hashlib.sha256(p.read_bytes()).hexdigest()[:8] for p in refiners)
            if cache.is_file() and cache.stat().st_mtime > max(c.stat().st_mtime for c in ckpts):
                stored = pickle.loads(cache.read_bytes())
                if isinstance(stored, dict) and stored.get("fingerprint") == key:
                    rows += stored["rows"]
                    continue
            first = len(rows)
            onnx = [Path(tmp) / f"fold{k}_{j}.onnx" for j in range(len(ckpts))]
            for c, o in zip(ckpts, onnx, strict=True):
                export_onnx(c, o)
            pred = Predictor(onnx, limits=_open_limits())
            kinds = {pred._label(i, name): kind for i, name, kind in pred.members}
            kinds["+".join(lb for lb, kd in kinds.items() if kd == "segmentation")] = "segmentation"  # fused
            _, val = split(records, k, 5, cfg.train.seed, cfg.train.split)
            variants: dict[str, list] = {"plain": [(r.image, r.points) for r in val]}
            for sname in SHIFTS:
                shifted = [apply_shift(sname, r.image, r.points, seed=cfg.train.seed, index=index[r.name]) for r in val]
                variants[sname] = [(x.image, x.points) if x.valid else None for x in shifted]
            variants["mirrored"] = [(m.image, m.points) for m in (mirror(r.image, r.points) for r in val)]
            for nname in NEGATIVE_PROXIES:
                variants[f"neg:{nname}"] = [(negative_proxy(nname, r.image, r.points, index=index[r.name]), None)
                                            for r in val]  # fmt: skip
            for v, items in variants.items():
                keep = [(r, it) for r, it in zip(val, items, strict=True) if it is not None]
                for (r, (_, gt)), p in zip(keep, pred.predict([it[0] for _, it in keep]), strict=True):
                    m = p.measurement
                    conf: dict[str, float] = {}
                    for label, c in (m.extras.get("member_confidence") or {}).items():
                        kind = kinds[label]
                        conf[kind] = min(conf.get(kind, 1.0), *c.values())
                    if m.extras.get("refiner_confidence"):
                        conf["refiner"] = min(m.extras["refiner_confidence"].values())
                    rows.append({
                        "fold": k, "variant": v, "name": r.name, "ok": m.ok, "reason": m.reason,
                        "pred": None if m.landmarks is None else m.landmarks.to_array(),
                        "gt": None if gt is None else np.asarray(gt, float), "conf": conf,
                        "spread": m.extras.get("aop_spread_deg"), "hsd": m.hsd,
                        "gt_hsd": measure_mask(r.mask).hsd if v == "plain" else None,
                        "p_mirrored": (m.extras.get("orientation") or {}).get("p_mirrored"),
                    })  # fmt: skip
            atomic_write(cache, pickle.dumps({"fingerprint": key, "rows": rows[first:]}))
    return rows


def _reason_key(reason: str) -> str:
    """A verdict's reason without its numbers, for counting."""
    return re.split(r" by |\d", re.sub(r"\s*\([^)]*\)", "", reason))[0].strip()


def flagged(row: dict, limits) -> tuple[bool, str]:
    """The verdict of ``limits`` on a row collected with the floors off: the collected verdict, then
    :func:`partus.quality.check_measurement` on the stored landmarks, confidences and heads' spread."""
    from partus.geometry import angle_of_progression
    from partus.measurement import Landmarks, Measurement
    from partus.quality import check_measurement

    if not row["ok"]:
        return True, _reason_key(row["reason"])
    m = Measurement(Landmarks.from_array(row["pred"]), aop=float(angle_of_progression(*row["pred"])))
    confs = [(kind, np.array([c])) for kind, c in row["conf"].items()]
    checked = check_measurement(m, (256, 256), confs, limits, aop_spread=row["spread"])  # psfhs scans: 256 x 256
    return (False, "") if checked.ok else (True, _reason_key(checked.reason))


def figures(rows: list[dict], limits, per_fold: bool = True) -> dict:
    """Shift-aware figures of the verdict ``limits`` from collected rows."""
    from partus.robustness import jsonable, summarise, variant_metrics

    raw, reasons = {}, {}
    for v in dict.fromkeys(r["variant"] for r in rows if not r["variant"].startswith("neg:")):
        sel = [r for r in rows if r["variant"] == v]
        pts = np.stack([r["pred"] if r["pred"] is not None else np.full((3, 2), np.nan) for r in sel])
        verdicts = [flagged(r, limits) for r in sel]
        for bad, why in verdicts:
            if bad:
                reasons[why] = reasons.get(why, 0) + 1
        raw[v] = (pts, np.stack([r["gt"] for r in sel]), np.array([not bad for bad, _ in verdicts]))
    rep = jsonable(summarise(raw))
    shifted = [v for k, v in raw.items() if k not in ("plain", "mirrored") and len(v[1])]
    rep["shift_pooled"] = variant_metrics(*(np.concatenate([v[i] for v in shifted]) for i in range(3)))
    plain = [r for r in rows if r["variant"] == "plain"]
    hsd = np.array([r["hsd"] - r["gt_hsd"] for r in plain], float)
    pm = np.array([r["p_mirrored"] for r in plain], float)
    negs = sorted({r["variant"] for r in rows if r["variant"].startswith("neg:")})
    rep.update({
        "hsd_mae": float(np.nanmean(np.abs(hsd))),
        "false_flips": int((pm > limits.mirror_threshold).sum()),
        "p_mirrored_plain_max": float(np.nanmax(pm)),
        "negatives_refused": {v[4:]: float(np.mean([flagged(r, limits)[0] for r in rows if r["variant"] == v]))
                              for v in negs},
        "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "folds": sorted({r["fold"] for r in rows}),
    })  # fmt: skip
    if per_fold and len(rep["folds"]) > 1:
        rep["per_fold"] = {}
        for k in rep["folds"]:
            f = figures([r for r in rows if r["fold"] == k], limits, per_fold=False)
            bands = {b["band"]: b["n"] for b in f["plain"]["bands"]}
            pl, sm = f["plain"], f["shift_mean"]
            rep["per_fold"][k] = {"n": pl["n"], "aop_mae": pl["aop_mae"], "mre": pl["mre"], "flagged": pl["flagged"],
                                  "shift_aop_mae": sm["aop_mae"], "shift_flagged": sm["flagged"],
                                  "mirrored_aop_mae": f["mirrored"]["aop_mae"], "n_below_90": bands["<90"],
                                  "false_flips": f["false_flips"]}  # fmt: skip
    return rep


def calibrate(rows: list[dict], limits, quantiles=(0.0, 0.002, 0.005, 0.01, 0.0175, 0.02)) -> list[dict]:
    """Candidate floors at low quantiles of each confidence on plain + shifted held-out scans, with the
    resulting flagged share, kept vs flagged AoP error and refusal of the negative proxies."""
    from dataclasses import replace

    good = [r for r in rows if not r["variant"].startswith("neg:") and r["variant"] != "mirrored"]
    out = []
    for q in quantiles:
        floors = {}
        for kind, field in (("segmentation", "min_confidence"), ("heatmap", "min_peak"), ("dsnt", "min_dsnt_mass"),
                            ("refiner", "min_refiner_mass")):  # fmt: skip
            vals = np.array([r["conf"][kind] for r in good if kind in r["conf"]], float)
            floors[field] = float(np.quantile(vals, q)) if vals.size and q > 0 else 0.0
        spreads = np.array([r["spread"] for r in good if r["spread"] is not None], float)
        floors["max_aop_spread"] = float(np.quantile(spreads, 1 - q)) if q > 0 and spreads.size else 1e9
        lim = replace(limits, **floors)
        f = figures(rows, lim)
        out.append({"q": q, **{k: round(v, 4) for k, v in floors.items()}, "flagged_plain": f["plain"]["flagged"],
                    "flagged_shift": f["shift_mean"]["flagged"], "mae_kept": f["plain"]["aop_mae_kept"],
                    "mae_flagged": f["plain"]["aop_mae_flagged"], "mae_kept_shift": f["shift_pooled"]["aop_mae_kept"],
                    "mae_flagged_shift": f["shift_pooled"]["aop_mae_flagged"],
                    "negatives": f["negatives_refused"]})  # fmt: skip
    return out


def _pooled_calibration(cvs: list[Path], folds: list[int]) -> int:
    """Floors at quantiles of several CV draws' pooled confidences, and what they do to each draw."""
    from dataclasses import replace

    from partus.quality import DEFAULT_LIMITS

    rows = {d.name: collect(d, folds) for d in cvs}
    fields = ("min_confidence", "min_peak", "min_dsnt_mass", "min_refiner_mass", "max_aop_spread")
    for c in calibrate([r for rs in rows.values() for r in rs], DEFAULT_LIMITS):
        lim = replace(DEFAULT_LIMITS, **{k: c[k] for k in fields})
        print("pooled floors:", json.dumps({"q": c["q"], **{k: c[k] for k in fields}}))
        for name, rs in rows.items():
            f = figures(rs, lim, per_fold=False)
            print(f"  {name}: flagged {f['plain']['flagged']:.1%} plain / {f['shift_mean']['flagged']:.1%} shifted, "
                  f"kept {f['plain']['aop_mae_kept']:.2f} vs flagged {f['plain']['aop_mae_flagged']:.2f} deg, proxies "
                  f"refused {json.dumps({k: round(v, 2) for k, v in f['negatives_refused'].items()})}")  # fmt: skip
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-minutes", type=float, help="Wall time of `partus train configs/multitask.yaml`.")
    ap.add_argument("--cv", type=Path, nargs="+", default=[CV_DIR],
                    help="The cross-validation folder (foldK/checkpoints); with --calibrate-only several folders "
                         "of the same split (e.g. seeds) make each fold's prediction their ONNX ensemble.")  # fmt: skip
    ap.add_argument("--pooled", action="store_true",
                    help="With --calibrate-only and several --cv folders (draws of one config): calibrate "
                         "on their pooled rows instead of ensembling them; print each one's figures.")  # fmt: skip
    ap.add_argument("--card-only", action="store_true", help="Rewrite MODEL_CARD.md from the stored results.")
    ap.add_argument(
        "--refiner",
        type=Path,
        help="A symphysis refiner (refiner.pt, partus.train.refine) to ship beside the network; "
        "judge it with --cv of a CV folder whose folds carry refiners (scripts/ps_refine.py).",
    )
    ap.add_argument("--refiner-minutes", type=float, help="its measured training time (with --refiner)")
    ap.add_argument("--calibrate-only", action="store_true", help="Print the calibration table and stop.")
    ap.add_argument(
        "--figures-only",
        action="store_true",
        help="Keep the shipped network; recompute its held-out figures (e.g. after an inference change). With "
        "--refiner, the refiner beside it is shipped or replaced first.",
    )
    args = ap.parse_args()
    from model_card import render

    from partus import __version__
    from partus.io import atomic_write

    if args.card_only:
        stored = json.loads((WEIGHTS / "heldout_onnx.json").read_text())
        card = render(stored["shipped"], stored["heldout"], stored.get("plane"), __version__)
        atomic_write(WEIGHTS / "MODEL_CARD.md", card)
        return 0
    from partus.export import export_onnx
    from partus.quality import DEFAULT_LIMITS
    from partus.train.adapt import save_trainable

    folds = [k for k in range(5) if all(finished(d / f"fold{k}") for d in args.cv)]
    if len(args.cv) > 1 and not args.calibrate_only:
        ap.error("several --cv folders (an ensemble) are for --calibrate-only: the shipped model is one network")
    if args.pooled and not args.calibrate_only:
        ap.error("--pooled is for --calibrate-only")
    if args.calibrate_only and args.pooled:
        return _pooled_calibration(args.cv, folds)
    if args.calibrate_only:
        rows = collect(args.cv if len(args.cv) > 1 else args.cv[0], folds)
        for c in calibrate(rows, DEFAULT_LIMITS):
            print("calibration candidate:", json.dumps(c))
        f = figures(rows, DEFAULT_LIMITS)
        print(json.dumps({k: f[k] for k in ("plain", "shift_mean", "mirrored", "negatives_refused", "reasons",
                                           "false_flips", "hsd_mae", "folds", "per_fold") if k in f},
                         indent=1, default=str))  # fmt: skip
        return 0
    if args.refiner is not None:
        args.refiner = args.refiner.resolve()
        if not args.refiner.is_file() or args.refiner_minutes is None:
            ap.error("--refiner needs an existing refiner.pt and --refiner-minutes (its measured training time)")
    if not args.calibrate_only:  # the figures must describe what is shipped: refined folds for a refined model
        stored = json.loads((WEIGHTS / "heldout_onnx.json").read_text()) if args.figures_only else {}
        refined = args.refiner is not None or bool(stored.get("shipped", {}).get("refiner"))
        if any((d / f"fold{k}" / "refiner.pt").is_file() != refined for d in args.cv for k in folds):
            ap.error(f"every --cv fold needs a refiner.pt exactly when the shipped model has a refiner ({refined})")
    if args.figures_only:  # the shipped file stays; its figures are recomputed with today's inference code
        stored = json.loads((WEIGHTS / "heldout_onnx.json").read_text())
        shipped, plane = stored["shipped"], stored.get("plane")
        shipped["limits"] = dict(vars(DEFAULT_LIMITS))  # the limits these figures are computed with
    else:
        if args.train_minutes is None:
            ap.error("--train-minutes is required (the measured wall time of the all-data training)")
        WEIGHTS.mkdir(parents=True, exist_ok=True)
        plane_ckpt = PLANE_DIR / "multitask_plane.ckpt"
        source = plane_ckpt if plane_ckpt.is_file() else FINAL
        meta = export_onnx(source, WEIGHTS / FILE)
        meta.pop("refiner", None)  # a refiner of the run is shipped only when --refiner names it
        save_trainable(source, WEIGHTS / "multitask.pt")  # what partus adapt fine-tunes
        plane = json.loads((PLANE_DIR / "plane_head.json").read_text()) if plane_ckpt.is_file() else None
        for old in WEIGHTS.glob("*.onnx"):
            if old.name != FILE:
                old.unlink()  # a refiner of an earlier network too: --refiner ships one for this network
        data = (WEIGHTS / FILE).read_bytes()
        shipped = {"file": FILE, "config": CONFIG, "meta": meta, "sha": hashlib.sha256(data).hexdigest(),
                   "date": dt.date.today().isoformat(), "mb": len(data) / 2**20, "minutes": args.train_minutes,
                   "limits": {k: v for k, v in vars(DEFAULT_LIMITS).items()}}  # fmt: skip
    if args.refiner is not None:
        shipped["refiner"] = ship_refiner(args.refiner, args.refiner_minutes)
    rows = collect(args.cv[0], folds)
    for c in calibrate(rows, DEFAULT_LIMITS):
        print("calibration candidate:", json.dumps(c))
    held = figures(rows, DEFAULT_LIMITS)
    atomic_write(
        WEIGHTS / "heldout_onnx.json",
        json.dumps({"shipped": shipped, "heldout": held, "plane": plane}, indent=1, default=list) + "\n",
    )
    atomic_write(WEIGHTS / "MODEL_CARD.md", render(shipped, held, plane, __version__))
    print(json.dumps({k: held[k] for k in ("plain", "shift_mean", "mirrored", "negatives_refused")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
