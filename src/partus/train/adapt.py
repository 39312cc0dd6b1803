"""``partus adapt``: fit the shipped network to a new site from that site's unlabelled scans.

1. The shipped model measures every scan ("before") and labels it; :func:`partus.pseudo.pseudo_label`
   keeps the labels that pass its checks. Too few kept (``min_kept`` scans or ``min_kept_share``) ends
   the run with an error naming the commonest rejection: the scans are not intrapartum scans this model
   can label, and adapting to them would teach it nonsense.
2. Optionally (``pretrain_minutes`` > 0), MoCo v2 on the scans, starting from the shipped encoder.
3. Optionally (``epochs`` > 0; off by default: on simulated sites it made the network worse on the
   site's other scans), the shipped network is fine-tuned on the kept labels (``steps`` optimiser
   steps, its training augmentation, orientation head included), starting from its trainable weights
   (``weights/multitask.pt``, the checkpoint the bundled ONNX was exported from).
4. The BatchNorm layers' scales and shifts are fitted to the site's scans by entropy minimisation
   (``tent_epochs`` passes, Tent: Wang et al. 2021; every other weight frozen), then every BatchNorm layer's
   running statistics are re-estimated on all the site's scans (``bn_stats``,
   AdaBN: Li et al. 2016), the weights unchanged: the layers normalise the site's images as they did the
   training scans. No label is used; on simulated sites this is what helps (``benchmarks/ACCURACY.md``).
   The symphysis refiner (:mod:`partus.refine`) goes with the network: with ``refiner_stats`` and its
   trainable weights beside the base (``NAME.refiner.pt``), its statistics are re-estimated the same way on
   the windows it reads around the adapted network's landmarks; otherwise it is copied unchanged.
5. Its standard-plane head is refitted on the adapted network (positives: the kept scans plain, mirrored
   and shifted; negatives: the weak non-standard families made from them), then it is exported to
   ``DIR/multitask.onnx`` with the parity check.
6. The adapted model measures every scan again ("after"); ``DIR/adapt_report.json``, ``.md`` and ``.png``
   compare the two: share measured (not flagged), confidences, head agreement, AoP per scan and its
   distribution.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning
import numpy as np
import torch

from ..data.unlabelled import Scan
from ..errors import InputError

__all__ = ["TRAINABLE", "AdaptConfig", "adapt", "load_trainable", "save_encoder", "save_trainable", "trainable_refiner"]

#: The shipped network's trainable weights (float32 state dict + its training config).
TRAINABLE = Path(__file__).resolve().parents[1] / "weights" / "multitask.pt"


@dataclass
class AdaptConfig:
    """``epochs`` passes over the kept pseudo-labels (``steps``, when given, overrides them; 0: no
    fine-tuning, the default); ``tent_epochs``: passes of entropy minimisation over the site's scans that
    fit the BatchNorm scales and shifts (Tent, :mod:`partus.train.tent`; 0: none); ``bn_stats``: then
    re-estimate the BatchNorm statistics on the site's scans (of the layers named ``bn_prefix...``, keeping
    ``bn_prior`` of the old ones: :func:`~partus.train.adabn.recalibrate_bn`); ``refiner_stats``: the
    symphysis refiner's too, on its windows (off: on simulated sites it helped where gray levels changed and
    hurt where the sector did, worse on average; ``benchmarks/ACCURACY.md``)."""

    epochs: float = 0.0
    steps: int | None = None
    lr: float = 5e-4
    batch_size: int = 8
    weight: float = 1.0  # pseudo-labels are the only labels here
    pretrain_minutes: float = 0.0
    bn_stats: bool = True
    bn_prior: float = 0.0
    bn_prefix: str = ""
    tent_epochs: int = 2
    tent_lr: float = 1e-3
    refiner_stats: bool = False
    min_kept: int = 20
    min_kept_share: float = 0.2
    seed: int = 0

    @property
    def fine_tunes(self) -> bool:
        """Whether ``adapt`` fine-tunes: ``steps`` > 0 when given, else ``epochs`` > 0."""
        return bool(self.steps) if self.steps is not None else self.epochs > 0


def save_trainable(checkpoint: str | Path, out: str | Path = TRAINABLE) -> Path:
    """Write a Lightning checkpoint's model weights (float32) and config: what ``adapt`` starts from; and
    the run's symphysis refiner, if it has one, beside it (:func:`trainable_refiner`).

    Full precision: ``adapt`` by default changes only the BatchNorm statistics, so the adapted model must be
    the shipped one elsewhere (fp16 weights moved the weight-averaged network's masks by up to 0.017)."""
    from ..io import atomic_path
    from .refine import run_refiner

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    sd = {k[len("model.") :]: v.float() if v.is_floating_point() else v
          for k, v in ckpt["state_dict"].items() if k.startswith("model.")}  # fmt: skip
    with atomic_path(out) as tmp:
        torch.save({"config": ckpt["hyper_parameters"]["config"], "state_dict": sd}, tmp)
    refiner, beside = run_refiner(checkpoint), trainable_refiner(out)
    beside.unlink(missing_ok=True)  # never another network's
    if refiner is not None:
        with atomic_path(beside) as tmp:
            shutil.copyfile(refiner, tmp)
    return Path(out)


def trainable_refiner(trainable: str | Path) -> Path:
    """Where the trainable weights of the refiner of ``NAME.pt`` (:func:`save_trainable`) live: ``NAME.refiner.pt``."""
    p = Path(trainable)
    return p.with_name(p.name.removesuffix(".pt") + ".refiner.pt")


def save_encoder(state: dict, path: str | Path) -> Path:
    """The encoder of a multitask state dict as a torchvision-named MobileNetV2 ``.pth`` (atomically): what
    ``model.encoder_weights`` and :func:`partus.train.ssl.pretrain`'s ``init`` read."""
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        torch.save({k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.features.")}, tmp)
    return Path(path)


def load_trainable(path: str | Path = TRAINABLE) -> tuple[dict, dict]:
    """The config (dict) and fp32 state dict of a file written by :func:`save_trainable`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "the shipped network's trainable weights are missing; reinstall partus")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    return blob["config"], {k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()}


def _adapt_refiner(trainable: Path, model_path: Path, scans: Sequence[Scan], out: Path) -> int:
    """The base refiner with its BatchNorm statistics re-estimated on the windows it reads around the landmarks
    of the adapted network ``model_path`` (alone, in the display its orientation head decides), saved to
    ``out`` and exported beside ``model_path``; returns the number of windows."""
    from ..conventions import Orientation
    from ..io import as_gray_uint8
    from ..predict import Predictor
    from ..refine import refiner_path
    from .adabn import recalibrate_refiner_bn
    from .refine import export_refiner, load_refiner, save_refiner

    net, rc, config = load_refiner(trainable)
    grays, firsts = [], []
    for scan, p in zip(scans, Predictor(model_path).predict([s.image for s in scans]), strict=True):
        m = p.measurement
        if m.landmarks is None:
            continue
        gray, points = as_gray_uint8(np.asarray(scan.image)), m.landmarks.to_array()
        if m.orientation == Orientation.MIRRORED:  # the refiner reads the usual display
            gray, points[:, 0] = np.ascontiguousarray(gray[:, ::-1]), gray.shape[1] - 1 - points[:, 0]
        grays.append(gray)
        firsts.append(points)
    n = recalibrate_refiner_bn(net, rc, grays, firsts)
    save_refiner(net, rc, out, config, key="adabn")
    export_refiner(out, refiner_path(model_path))
    return n


def summarise(ms) -> dict:
    """Site-level figures of a list of :class:`~partus.Measurement`."""
    ok = np.array([m.ok for m in ms])
    aop = np.array([m.aop for m in ms if m.ok], float)
    spread = np.array([np.nan if m.extras.get("aop_spread_deg") is None else m.extras["aop_spread_deg"]
                       for m in ms if m.ok], float)  # fmt: skip
    conf = np.array([min(m.extras["confidence"].values()) for m in ms if m.ok and m.extras.get("confidence")], float)
    reasons: dict[str, int] = {}
    for m in ms:
        if not m.ok:
            key = (m.reason or "").split(" (")[0].split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1

    def q(a):
        return [round(float(v), 2) for v in np.nanpercentile(a, [10, 25, 50, 75, 90])] if a.size else None

    return {"scans": len(ms), "measured": int(ok.sum()), "flagged_share": round(1 - float(ok.mean()), 4),
            "aop_quantiles_10_25_50_75_90": q(aop), "aop_spread_median": None if not spread.size else
            round(float(np.nanmedian(spread)), 3), "confidence_median": None if not conf.size else
            round(float(np.median(conf)), 4),
            "flag_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1]))}  # fmt: skip


def adapt(
    scans: Sequence[Scan],
    out_dir: str | Path,
    *,
    config: AdaptConfig | None = None,
    base: str | Path = TRAINABLE,
    base_onnx: str | Path | None = None,
    rules=None,
    step: Callable[[str], None] | None = None,
) -> dict:
    """Adapt the network ``base`` (its ONNX: ``base_onnx``, default the bundled model) to ``scans``;
    write ``DIR/multitask.onnx`` and the report; return the report. ``step(msg)`` announces each stage."""
    from ..config import Config
    from ..export import export_onnx
    from ..io import atomic_path, atomic_write, write_json
    from ..predict import DEFAULT_MODELS, Predictor
    from ..pseudo import pseudo_label, write_pseudo_labels
    from ..refine import refiner_path
    from .adabn import recalibrate_bn
    from .fit import fit
    from .module import LandmarkModule
    from .plane import save_with_plane_head
    from .semi import pseudo_records

    cfg_a = config or AdaptConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in (out / "multitask.onnx", refiner_path(out / "multitask.onnx")):
        old.unlink(missing_ok=True)  # a refused or failed run must not leave an old model
    say = step or (lambda msg: None)
    t0 = time.perf_counter()
    if not scans:
        raise InputError("scans", "no scan to adapt to")
    if cfg_a.tent_epochs > 0 and not cfg_a.bn_stats:
        raise InputError("tent_epochs", "entropy minimisation moves the BatchNorm statistics with its batches: "
                         "it needs bn_stats to re-estimate them after")  # fmt: skip
    if cfg_a.pretrain_minutes > 0 and not cfg_a.fine_tunes:
        raise InputError("pretrain_minutes", "a pretrained encoder needs fine-tuning to fit the heads to it: "
                         "give epochs or steps too")  # fmt: skip
    base_refiner = refiner_path(base_onnx if base_onnx is not None else DEFAULT_MODELS[0])
    if cfg_a.refiner_stats and base_refiner.is_file() and not trainable_refiner(base).is_file():
        raise InputError("refiner_stats", f"the refiner's statistics need its trainable weights "
                         f"({trainable_refiner(base)}: save_trainable of a run that trained one)")  # fmt: skip
    say(f"labelling {len(scans)} scans with the shipped model")
    labels = pseudo_label(Predictor(base_onnx), list(scans), rules=rules)
    counts = write_pseudo_labels(out / "pseudo", labels)
    need = max(cfg_a.min_kept, int(np.ceil(cfg_a.min_kept_share * len(scans))))
    if counts["kept"] < need:
        top = next(iter(counts["rejected"]), "none")
        example = next((p.reason for p in labels if p.check == top), "")
        raise InputError("scans", f"only {counts['kept']} of {len(scans)} scans pass the pseudo-label checks "
                         f"(need {need}); commonest rejection: {top} ({example}). Are these intrapartum "
                         f"transperineal scans? See {out / 'pseudo' / 'pseudo_labels.csv'}")  # fmt: skip
    before = [p.measurement for p in labels]  # the labelling pass measured every scan
    cfg_dict, state = load_trainable(base)
    steps = 0
    if cfg_a.fine_tunes:
        steps = cfg_a.steps or max(1, round(cfg_a.epochs * counts["kept"] / cfg_a.batch_size))
    tree = {**cfg_dict, "train": {**cfg_dict["train"], "max_steps": steps, "epochs": 100000, "lr": cfg_a.lr,
                                  "batch_size": cfg_a.batch_size, "seed": cfg_a.seed, "error_weighted": {"rounds": 0},
                                  "ema": 0.0},  # an average over ~500 steps would hardly leave the start
            "semi": {}, "refine": {**cfg_dict.get("refine", {}), "epochs": 0}}  # fmt: skip
    tree["model"] = {**tree["model"], "encoder_weights": None}
    cfg = Config(**tree)
    if cfg_a.pretrain_minutes > 0:
        state = _pretrained(scans, state, out, cfg_a, say)
    records = pseudo_records(labels, cfg_a.weight)
    if steps > 0:
        say(f"fine-tuning on {len(records)} pseudo-labelled scans ({steps} steps)")
        module = fit(cfg, out / "finetune", records=records, init=state, progress=True, resume=False).module
    else:
        module = LandmarkModule(cfg.model_dump(mode="json"))
        module.model.load_state_dict(state)
    if cfg_a.tent_epochs > 0:
        from .tent import entropy_adapt

        say(f"entropy minimisation on the {len(scans)} scans ({cfg_a.tent_epochs} epochs)")
        entropy_adapt(module.model, [s.image for s in scans], int(cfg.data.input_size), cfg_a.tent_epochs,
                      cfg_a.tent_lr, seed=cfg_a.seed)  # fmt: skip
    if cfg_a.bn_stats:
        say(f"re-estimating the BatchNorm statistics on the {len(scans)} scans")
        recalibrate_bn(
            module.model,
            [s.image for s in scans],
            int(cfg.data.input_size),
            prior=cfg_a.bn_prior,
            prefix=cfg_a.bn_prefix,
        )
    # what LandmarkModule.load_from_checkpoint needs (the export reads it back)
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": lightning.__version__}  # fmt: skip
    head = None
    if module.model.plane_head is not None:
        say("refitting the standard-plane head")
        head = _refit_plane(module.model, records, int(cfg.data.input_size))
    ckpt_path = save_with_plane_head(ckpt, head, out / "adapted.ckpt")
    say("exporting")
    model_path = out / "multitask.onnx"
    export_onnx(ckpt_path, model_path)
    refiner_windows = 0
    if base_refiner.is_file() and cfg_a.refiner_stats:
        say("re-estimating the symphysis refiner's statistics on its windows")
        refiner_windows = _adapt_refiner(trainable_refiner(base), model_path, scans, out / "refiner.pt")
    elif base_refiner.is_file():  # the symphysis refiner goes with the network it refines, unchanged
        with atomic_path(refiner_path(model_path)) as tmp:
            shutil.copyfile(base_refiner, tmp)
    say("measuring every scan with the adapted model")
    after = [p.measurement for p in Predictor(model_path).predict([s.image for s in scans])]
    _plot(out / "adapt_report.png", before, after)
    report = {"scans": len(scans), "pseudo_labels": counts, "before": summarise(before), "after": summarise(after),
              "config": asdict(cfg_a), "steps": steps, "plane_head": head is not None,
              "refiner_windows": refiner_windows,
              "minutes": round((time.perf_counter() - t0) / 60, 1),
              "model": str(model_path)}  # fmt: skip
    write_json(out / "adapt_report.json", report)
    atomic_write(out / "adapt_report.md", _markdown(report))
    return report


def _pretrained(scans, state: dict, out: Path, cfg_a: AdaptConfig, say) -> dict:
    """MoCo v2 on the site's scans from the shipped encoder; returns ``state`` with that encoder."""
    from .ssl import PretrainConfig, pretrain

    init = save_encoder(state, out / "shipped_encoder.pth")
    say(f"pretraining the encoder on the site's scans ({cfg_a.pretrain_minutes:g} min)")
    enc = out / "encoder_moco.pth"
    pretrain([s.image for s in scans], enc, groups=[s.group for s in scans],
             config=PretrainConfig(minutes=cfg_a.pretrain_minutes, init=str(init), lr=0.002))  # fmt: skip
    new = torch.load(enc, map_location="cpu", weights_only=True)
    return {**state, **{f"encoder.{k}": v for k, v in new.items()}}


def _refit_plane(model, records, input_size: int):
    """The plane head refitted on the adapted network (positives: the kept scans; negatives: the weak
    non-standard families made from them)."""
    from .plane import fit_plane_head, plane_inputs, plane_set

    ps = plane_set(records, shifted=1)
    x = plane_inputs(model, ps.images, input_size)
    return fit_plane_head(x, ps.labels, hidden=model.plane_hidden)


def _plot(path: Path, before, after) -> Path:  # lists of Measurement
    """AoP of every scan, shipped vs adapted model (flagged scans marked), and both AoP histograms."""
    from matplotlib.figure import Figure

    from ..report import save_figure

    def arrays(ms):
        aop = np.array([np.nan if m.aop is None else m.aop for m in ms], float)
        return aop, np.array([m.ok for m in ms])

    (a0, ok0), (a1, ok1) = arrays(before), arrays(after)
    fig = Figure(figsize=(8, 3.6))
    ax, bx = fig.subplots(1, 2)
    both = ok0 & ok1
    ax.plot(a0[both], a1[both], "o", ms=3, alpha=0.6, color="tab:green", label="measured by both")
    ax.plot(a0[~both], a1[~both], "x", ms=4, color="tab:red", label="flagged by one")
    finite = np.concatenate([a0[np.isfinite(a0)], a1[np.isfinite(a1)]])
    if finite.size:
        lo, hi = float(finite.min()) - 2, float(finite.max()) + 2
        ax.plot([lo, hi], [lo, hi], "--", color="0.5", lw=0.8)
    ax.set_xlabel("AoP, shipped model (°)")
    ax.set_ylabel("AoP, adapted model (°)")
    ax.legend(fontsize=7)
    bins = np.linspace(60, 180, 25)
    bx.hist(a0[ok0], bins=bins, alpha=0.5, label=f"shipped ({int(ok0.sum())} measured)")
    bx.hist(a1[ok1], bins=bins, alpha=0.5, label=f"adapted ({int(ok1.sum())} measured)")
    bx.set_xlabel("AoP (°)")
    bx.set_ylabel("scans")
    bx.legend(fontsize=7)
    fig.suptitle(f"partus adapt: {len(before)} scans of the site, no labels used", fontsize=9)
    return save_figure(fig, path, dpi=110)


def _stages(r: dict) -> str:
    """What ``adapt`` changed, in words."""
    c = r["config"]
    stages = [f"MoCo pretraining of the encoder ({c['pretrain_minutes']:g} min)"] * (c["pretrain_minutes"] > 0)
    stages += [f"fine-tuning on the kept labels ({r['steps']} steps)"] * bool(r["steps"])
    stages += [f"BatchNorm scales fitted by entropy minimisation ({c['tent_epochs']} passes)"] * (
        c.get("tent_epochs", 0) > 0
    )
    stages += [f"BatchNorm statistics of the {r['scans']} scans"] * bool(c["bn_stats"])
    stages += ["a refitted standard-plane head"] * bool(r.get("plane_head"))
    return ", ".join(stages) or "nothing (the shipped network, re-exported)"


def _markdown(r: dict) -> str:
    b, a = r["before"], r["after"]
    rows = [("measured (not flagged)", f"{b['measured']} / {b['scans']}", f"{a['measured']} / {a['scans']}"),
            ("median head AoP spread (deg)", b["aop_spread_median"], a["aop_spread_median"]),
            ("median confidence", b["confidence_median"], a["confidence_median"]),
            ("AoP 10/25/50/75/90 % (deg)", b["aop_quantiles_10_25_50_75_90"],
             a["aop_quantiles_10_25_50_75_90"])]  # fmt: skip
    lines = ["# partus adapt: before and after", "",
             f"{r['scans']} scans; {r['pseudo_labels']['kept']} pseudo-labels kept "
             f"(rejected: {r['pseudo_labels']['rejected']}); {r['minutes']} min.", "",
             "Adapted by: " + _stages(r) + ".", "",
             "| | shipped model | adapted model |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {k} | {x} | {y} |" for k, x, y in rows]
    lines += [
        "",
        "![AoP per scan and AoP histograms, shipped vs adapted](adapt_report.png)",
        "",
        "No labels were used: these figures say whether the model became surer and more consistent "
        "on this site, not that it became more accurate. Check a few overlays before relying on it.",
        "",
    ]
    return "\n".join(lines)
