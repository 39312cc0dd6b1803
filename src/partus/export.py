"""Export a trained model to ONNX with a numeric parity check and self-describing metadata.

The ``.onnx`` file carries everything inference needs in its metadata (``partus`` key, JSON): model
name and kwargs, kind, output stride, input size and scaling, landmark order, decoding method and
sigma, flip policy, the training config name and the partus version. ONNX Runtime inference therefore
needs no torch and no config file.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["export_onnx", "open_model", "read_metadata", "write_onnx"]

METADATA_KEY = "partus"


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    *,
    atol: float = 1e-4,
    cls_atol: float = 1e-2,
    opset: int = 17,
    seed: int = 0,
) -> dict[str, Any]:
    """Export a Lightning checkpoint of :class:`~partus.train.module.LandmarkModule` to ONNX.

    The exported graph is run in ONNX Runtime on random inputs of the training size and of another size
    (dynamic height/width) and compared with torch; a difference above ``atol`` in a dense output, or above
    ``cls_atol`` in the image-level ``cls`` logits, raises. (A plane head's logit sums an MLP over ~1,300
    pooled features, where the two runtimes' float32 rounding differs by up to ~1e-3: a probability
    change below 3e-4.)

    Returns
    -------
    dict
        The metadata written into the file, plus ``max_abs_diff``.

    Raises
    ------
    RuntimeError
        If ONNX Runtime disagrees with torch by more than ``atol``.
    """
    from . import __version__
    from .conventions import LANDMARKS
    from .train.module import LandmarkModule

    module = LandmarkModule.load_from_checkpoint(checkpoint, map_location="cpu")
    model = module.model.eval()
    cfg = module.cfg
    size = cfg.data.input_size
    meta = {
        "format": 1,
        "partus_version": __version__,
        "config": cfg.name,
        "model": cfg.model.name,
        "model_kwargs": cfg.model.kwargs,
        "kind": model.kind,
        "output_stride": model.output_stride,
        "required_divisor": model.required_divisor,
        "input_size": size,
        "input_scale": "uint8 / 255, one channel",
        "landmarks": list(LANDMARKS),
        "decode": cfg.decode.method,
        "sigma": cfg.data.sigma,
        "flip_policy": cfg.data.augment.flip_policy,
        "coordinates": "(x, y) pixels, origin top-left pixel centre; grid and image pixel edges align",
    }
    names = ["output"]
    if model.kind == "multitask":  # named outputs, one per head; the heads' kinds in the metadata
        from .models.multitask import DENSE_HEADS

        names = [*DENSE_HEADS, "cls"]
        meta["heads"] = dict(DENSE_HEADS)
        meta["cls_names"] = list(model.cls_names)
        traced = _tuple_outputs(model, names)
    else:
        traced = model
    written = write_onnx(traced, names, size, model.required_divisor, meta, out, atol=atol, cls_atol=cls_atol,
                         opset=opset, seed=seed)  # fmt: skip
    from .refine import refiner_path
    from .train.refine import export_refiner, run_refiner

    refiner_path(out).unlink(missing_ok=True)  # never leave another network's refiner beside this one
    refiner = run_refiner(checkpoint)
    if refiner is not None:  # the run's symphysis refiner goes beside the network
        written["refiner"] = export_refiner(refiner, refiner_path(out))
    return written


def write_onnx(
    traced, names: list[str], size: int, divisor: int, meta: dict[str, Any], out: str | Path, *,
    atol: float = 1e-4, cls_atol: float = 1e-2, opset: int = 17, seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Export ``traced`` (outputs ``names``; ``cls`` is image-level) with ``meta``, atomically, after checking
    ONNX Runtime against torch at ``size`` and at another size (dynamic height/width)."""
    import onnx
    import onnxruntime as ort
    import torch

    from .io import atomic_path

    x = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(seed))
    out = Path(out)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            traced, x, str(tmp), dynamo=False, opset_version=opset, input_names=["image"], output_names=names,
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                          **{n: {0: "batch", 2: "h", 3: "w"} if n != "cls" else {0: "batch"} for n in names}},
        )  # fmt: skip
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(meta)
        onnx.save(proto, str(tmp))
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        worst = 0.0
        other = size + divisor * 2
        for shape in ((2, 1, size, size), (1, 1, other, size)):
            inp = torch.rand(*shape, generator=torch.Generator().manual_seed(seed + 1))
            with torch.inference_mode():
                ref = traced(inp)
            refs = [r.numpy() for r in (ref if isinstance(ref, tuple) else (ref,))]
            for name, r, got in zip(names, refs, session.run(None, {"image": inp.numpy()}), strict=True):
                diff = float(np.abs(r - got).max())
                limit = cls_atol if name == "cls" else atol
                if diff > limit:
                    raise RuntimeError(f"ONNX Runtime differs from torch by {diff:.3g} in {name} (> {limit}); "
                                       "not written")  # fmt: skip
                if name != "cls":
                    worst = max(worst, diff)
    return {**meta, "max_abs_diff": worst}


def _tuple_outputs(model, names: list[str]):
    """A multitask model as a module returning its heads as a tuple in ``names`` order (for tracing)."""
    import torch

    class TupleOutputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x):
            out = self.model(x)
            return tuple(out[n] for n in names)

    return TupleOutputs().eval()


def open_model(path: str | Path, *, threads: int = 0, spinning: bool = False) -> tuple[Any, dict[str, Any]]:
    """An ONNX Runtime CPU session for a partus model and its metadata (no torch).

    ``threads`` sets ONNX Runtime's intra-op threads (0: its default, one per core). ``spinning`` lets
    idle worker threads spin between runs: faster for a lone session, harmful for several (an ensemble).

    Raises
    ------
    InputError
        If the file is missing, not an ONNX model, or not exported by partus.
    """
    import onnxruntime as ort

    from .errors import InputError

    if not Path(path).is_file():
        raise InputError(path, "model file not found")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.log_severity_level = 3
    # With several sessions (an ensemble) each pool's spinning threads steal the cores from the session that
    # runs next (measured: 25.8 -> 14.7 ms for the 3-model ensemble without spinning); a lone session gains
    # from it (the multitask network: ONNX Runtime 7.4 -> 5.8 ms median).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises several unrelated types for unreadable files
        raise InputError(path, f"not a readable ONNX model: {exc}") from None
    raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if raw is None:
        raise InputError(path, f"no '{METADATA_KEY}' metadata: not a model exported by partus")
    return session, json.loads(raw)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The partus metadata of an exported model (ONNX Runtime only; no torch)."""
    return open_model(path)[1]
