"""partus: labour progress on intrapartum (transperineal) ultrasound.

Finds the pubic-symphysis endpoints PS1, PS2 and the fetal-head tangent point FH1, and measures the
Angle of Progression (AoP) and head-symphysis distance (HSD). Conventions: :mod:`partus.conventions`.
"""

from .conventions import LANDMARKS, HSDMethod, Orientation, Status
from .measurement import Landmarks, Measurement

__version__ = "0.1.0"

__all__ = [
    "LANDMARKS",
    "HSDMethod",
    "Landmarks",
    "Measurement",
    "Orientation",
    "Status",
    "__version__",
    "load_model",
    "measure",
]


def measure(image, **kw) -> Measurement:
    """Measure AoP and HSD on one image with the bundled model: see :func:`partus.predict.measure`.

    >>> m = partus.measure("scan.png")  # doctest: +SKIP
    >>> m.aop, m.hsd, m.hsd_unit, m.status, m.reason  # doctest: +SKIP
    """
    from .predict import measure as _measure  # ONNX Runtime is imported on first use only

    return _measure(image, **kw)


def load_model(models=None, **kw):
    """A :class:`partus.predict.Predictor` (the bundled model by default): see :func:`partus.predict.load_model`."""
    from .predict import load_model as _load

    return _load(models, **kw)
