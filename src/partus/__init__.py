"""partus: labour progress on intrapartum (transperineal) ultrasound.

Finds the pubic-symphysis endpoints PS1, PS2 and the fetal-head tangent point FH1, and measures the
Angle of Progression (AoP) and head-symphysis distance (HSD). Conventions: :mod:`partus.conventions`.
"""

from .conventions import LANDMARKS, HSDMethod, Orientation, Status
from .measurement import Landmarks, Measurement

__version__ = "0.1.0"

__all__ = ["LANDMARKS", "HSDMethod", "Landmarks", "Measurement", "Orientation", "Status", "__version__"]
