"""``partus geometry`` (landmarks, AoP and HSD from masks) and ``partus evaluate`` (errors against ground truth)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..conventions import HSDMethod, LabelScheme, Orientation
from ._common import EXIT_PARTIAL, _expand, _fmt, _print_measurements, _progress, _usage, err, out


def geometry(
    masks: Annotated[list[Path], typer.Argument(help="Mask files or folders of masks (PNG, .mha, .nii...).")],
    labels: Annotated[
        LabelScheme, typer.Option(help="Label values: psfhs 0/1/2, iugc2024 0/7/8 or 0/127/255, auto detects.")
    ] = LabelScheme.AUTO,
    orientation: Annotated[
        Orientation, typer.Option(help="standard = official rule; mirrored for mirrored scans.")
    ] = Orientation.STANDARD,
    hsd: Annotated[HSDMethod, typer.Option(help="HSD definition.")] = HSDMethod.NEAREST,
    spacing: Annotated[
        tuple[float, float] | None, typer.Option(help="Pixel spacing SX SY in mm/px: HSD in mm.")
    ] = None,
    clean: Annotated[bool, typer.Option(help="Clean predicted masks first (largest part, holes, border).")] = False,
    allow_border: Annotated[bool, typer.Option(help="Measure even if a PS end touches the image border.")] = False,
    images: Annotated[Path | None, typer.Option(help="Folder of images with the masks' names, for overlays.")] = None,
    overlays: Annotated[Path | None, typer.Option(help="Write an overlay PNG per mask into this folder.")] = None,
    csv: Annotated[Path | None, typer.Option(help="Write IUGC 2025 CSV (+ AOP, HSD, status) here.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Landmarks, AoP and HSD from PS/FH masks, by the official rule (docs/conventions.md)."""
    from ..geometry import measure_mask
    from ..io import read_any, read_label_map, write_predictions_csv
    from ..io.labels import MASK_SUFFIXES

    files = _expand(masks, MASK_SUFFIXES)
    if images is not None and not images.is_dir():
        raise _usage(f"--images {images}: not a folder")
    records, failures = [], 0
    for path in _progress(files, "Measuring masks", quiet):
        try:
            lab = read_label_map(path, scheme=labels.value)
            sp = spacing
            if sp is None and path.name.lower().endswith((".mha", ".mhd", ".nii", ".nii.gz")):
                sp = read_any(path).pixel_spacing
            m = measure_mask(
                lab, orientation=orientation, hsd_method=hsd, pixel_spacing=sp, clean=clean, allow_border=allow_border
            )
        except ValueError as exc:  # InputError and friends: report, skip, go on
            failures += 1
            err.print(f"[red]skipped[/red] {escape(str(exc))}")
            continue
        records.append((path, m))
        if overlays is not None:
            _write_overlay(overlays, path, m, lab, _find_image(images, path))

    if csv is not None:
        write_predictions_csv(csv, [(p.name, m) for p, m in records])
    if not quiet:
        _print_measurements(records, json_out)
        written = [f"CSV {csv}"] * (csv is not None) + [f"overlays in {overlays}/"] * (overlays is not None)
        if written:
            err.print("wrote " + ", ".join(written))
    if failures:
        err.print(f"[yellow]{failures} of {len(files)} file(s) could not be read[/yellow]")
        raise typer.Exit(EXIT_PARTIAL)


def _find_image(images: Path | None, mask: Path) -> Path | None:
    if images is None:
        return None
    from ..io import file_stem

    hits = sorted(p for p in images.glob(f"{file_stem(mask)}.*") if p.is_file())
    return hits[0] if hits else None


def _write_overlay(folder: Path, mask_path: Path, m, lab, image_path: Path | None) -> None:
    from ..io import file_stem, read_any, write_png
    from ..viz import draw_overlay

    image = None if image_path is None else read_any(image_path).pixels
    if image is None or image.ndim != 2 or image.shape != lab.shape:
        image = (lab.astype("uint8") * 100).astype("uint8")
    write_png(
        folder / f"{file_stem(mask_path)}_overlay.png", draw_overlay(image, m, label_map=lab, title=mask_path.name)
    )


def evaluate(
    pred: Annotated[Path, typer.Option("--pred", help="Prediction CSV (IUGC 2025 format, optional HSD).")],
    gt: Annotated[Path | None, typer.Option("--gt", help="Ground-truth CSV (IUGC 2025 format, optional HSD).")] = None,
    gt_aop: Annotated[Path | None, typer.Option(help="Ground-truth AoP CSV (Filename,AOP), if separate.")] = None,
    pred_masks: Annotated[Path | None, typer.Option(help="Folder of predicted masks (matched by name).")] = None,
    gt_masks: Annotated[Path | None, typer.Option(help="Folder of ground-truth masks.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write summary.json, per_image.csv and plots here.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    planes: Annotated[
        bool, typer.Option("--planes", help="Score standard_plane against IUGC 2024 frame names (class 6 = standard).")
    ] = False,
    plane_labels: Annotated[
        Path | None, typer.Option(help="Score standard_plane against a CSV Filename,standard_plane (0/1).")
    ] = None,
    plane_threshold: Annotated[float, typer.Option(help="P(standard plane) from which a frame counts as one.")] = 0.5,
) -> None:
    """Landmark, AoP, HSD (and segmentation) errors of predictions against ground truth; with --planes or
    --plane-labels, standard-plane classification (accuracy, AUC, F1, MCC; IUGC 2024 definitions)."""
    from ..errors import InputError
    from ..fileeval import evaluate_files

    if planes or plane_labels is not None:
        _evaluate_planes(pred, plane_labels, plane_threshold, json_out)
        if gt is None:
            return
    elif gt is None:
        raise _usage("give --gt (landmarks), or --planes / --plane-labels (standard-plane classification)")
    for opt, path in (("--pred", pred), ("--gt", gt), ("--gt-aop", gt_aop)):
        if path is not None and not path.is_file():
            raise _usage(f"{opt} {path}: no such file")
    if (pred_masks is None) != (gt_masks is None):
        raise _usage("--pred-masks and --gt-masks go together")
    for opt, path in (("--pred-masks", pred_masks), ("--gt-masks", gt_masks)):
        if path is not None and not path.is_dir():
            raise _usage(f"{opt} {path}: not a folder")
    try:
        res = evaluate_files(pred, gt, gt_aop_csv=gt_aop, pred_masks=pred_masks, gt_masks=gt_masks)
    except InputError as exc:
        raise _usage(str(exc)) from None
    reports = [r for r in (res.landmarks, res.segmentation) if r is not None]
    if res.unmatched_predictions:
        err.print(f"[yellow]ignored {len(res.unmatched_predictions)} prediction(s) not in the ground truth[/yellow]")
    if res.missing_pred_masks:
        err.print(f"[yellow]{len(res.missing_pred_masks)} predicted mask(s) missing: scored as empty[/yellow]")
    if json_out:
        summary = {"landmarks": res.landmarks.summary}
        if res.segmentation is not None:
            summary["segmentation"] = res.segmentation.summary
        out.print_json(json.dumps(summary, default=_json_default))
    else:
        _print_evaluation(res)
    if report is not None:
        from ..report import write_report

        written = write_report(reports if len(reports) > 1 else reports[0], report)
        err.print(f"report: {len(written)} file(s) in {report}")


def _evaluate_planes(pred: Path, labels_csv: Path | None, threshold: float, json_out: bool) -> None:
    from ..errors import InputError
    from ..planeval import evaluate_planes, read_plane_labels

    try:
        labels = read_plane_labels(labels_csv) if labels_csv is not None else None
        m = evaluate_planes(pred, labels, threshold=threshold)
    except InputError as exc:
        raise _usage(str(exc)) from None
    if json_out:
        out.print_json(json.dumps({"planes": m}, default=_json_default))
        return
    t = Table(title=f"Standard plane: {m['n']} frame(s), threshold {threshold:g}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for key in ("accuracy", "auc", "f1", "mcc"):
        t.add_row(key.upper() if key != "accuracy" else key, _fmt(m[key], 4))
    t.add_row("TP / FP / TN / FN", f"{m['tp']} / {m['fp']} / {m['tn']} / {m['fn']}")
    if m["n_without_score"]:
        t.add_row("rows without a score (counted non-standard)", str(m["n_without_score"]))
    out.print(t)


def _json_default(value):
    return None if isinstance(value, float) and not math.isfinite(value) else str(value)


def _print_evaluation(res) -> None:
    s = res.landmarks.summary
    unit = s["unit"]
    t = Table(title=f"Landmarks: {s['n_images']} image(s), {s['n_missing']} without points")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row(f"MRE ({unit})", _fmt(s["mre"], 3))
    for name, v in s["per_landmark"].items():
        t.add_row(f"  {name} error ({unit})", _fmt(v, 3))
    for r, v in s["sdr"].items():
        t.add_row(f"SDR@{r} {unit} (%)", _fmt(100 * v, 1))
    for key, label, u in (("aop", "AoP", "deg"), ("hsd", "HSD", unit)):
        a = s.get(key)
        if a:
            t.add_row(f"{label} MAE ({u})", _fmt(a["mae"], 3))
            t.add_row(f"{label} median AE ({u})", _fmt(a["median_ae"], 3))
            t.add_row(f"{label} bias, pred - gt ({u})", _fmt(a["bias"], 3))
    out.print(t)
    if res.segmentation is not None:
        seg = res.segmentation.summary
        t = Table(title=f"Segmentation: {seg['n_images']} image(s)")
        for col in ("class", "Dice", f"HD ({seg['unit']})", "HD95", "ASD", "empty pred."):
            t.add_column(col, justify="left" if col == "class" else "right")
        for cls, m in seg["per_class"].items():
            row = [_fmt(m[k], 4 if k == "dice" else 2) for k in ("dice", "hd", "hd95", "asd")]
            t.add_row(cls, *row, str(seg["n_empty_pred"][cls]))
        out.print(t)
        aop_mae = s["aop"]["mae"] if s.get("aop") else math.nan
        out.print(f"FH-PS-AoP 2023 score: {_fmt(res.segmentation.score(aop_mae), 4)}")
