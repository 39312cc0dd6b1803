"""Networks for landmark heatmaps, DSNT coordinate regression and PS/FH segmentation (needs torch).

Every model is built by name, ``create_model(name, **kwargs)``, and shares one contract:

- constructor keywords ``in_channels=1``, ``out_channels`` (3 landmarks, or 3 classes background / PS /
  FH), ``features=16`` (base width), ``output_stride`` (1, 2 or 4) and model-specific ones;
- attributes ``kind`` (``"heatmap"``, ``"dsnt"`` or ``"segmentation"``), ``output_stride`` and
  ``required_divisor`` (input height and width must be multiples of it);
- ``forward(x)``: ``(N, in_channels, H, W)`` -> raw logits ``(N, out_channels, H / s, W / s)`` with
  ``s = output_stride``; no sigmoid or softmax inside. ``forward = forward_head(forward_features(x))``.

Registered models: ``heatmap_unet``, ``dsnt_unet``, ``seg_unet`` (:mod:`.unet`), ``transunet``,
``transunet_seg`` (:mod:`.transunet`), ``mobilenet_unet`` (:mod:`.mobilenet`), ``multitask_net``
(:mod:`.multitask`: one encoder, all three dense heads plus image-level classification). The DSNT layer and its
regularisers are in :mod:`partus.models.dsnt`.
"""

from . import mobilenet as mobilenet
from . import multitask as multitask
from . import transunet as transunet
from . import unet as unet
from ._base import DenseModel, ModelKind
from ._registry import create_model, list_models, register_model
from .blocks import Upsample
from .mobilenet import MobileNetUNet, load_imagenet_encoder
from .multitask import MultiTaskNet
from .transunet import TransUNet
from .unet import UNet

__all__ = [
    "DenseModel",
    "MobileNetUNet",
    "ModelKind",
    "MultiTaskNet",
    "TransUNet",
    "UNet",
    "Upsample",
    "create_model",
    "list_models",
    "load_imagenet_encoder",
    "register_model",
]
