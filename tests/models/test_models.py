"""Contract tests run on every registered model (tiny configurations: features=8, 64x64 inputs)."""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pytest
import torch
from torch import nn

from partus.models import ModelKind, create_model, list_models, register_model

ALL_MODELS = list_models()
#: Models with the single-tensor output contract; ``multitask_net`` returns a dict of heads and has its own
#: tests (tests/models/test_multitask.py).
MODELS = [m for m in ALL_MODELS if m != "multitask_net"]
#: Extra constructor arguments that make a model tiny; every model gets ``features=8``.
TINY = {
    "transunet": {"embed_dim": 32, "depth": 1, "num_heads": 2, "img_size": 64},
    "transunet_seg": {"embed_dim": 32, "depth": 1, "num_heads": 2, "img_size": 64},
}


def tiny(name: str, seed: int = 0, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(name, **{"features": 8, **TINY.get(name, {}), **kwargs})


def first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_registry_lists_the_documented_models():
    expected = {"heatmap_unet", "dsnt_unet", "seg_unet", "transunet", "transunet_seg", "mobilenet_unet",
                "multitask_net"}  # fmt: skip
    assert expected <= set(ALL_MODELS)
    assert ALL_MODELS == sorted(ALL_MODELS)
    assert set(ALL_MODELS) - set(MODELS) == {"multitask_net"}


def test_unknown_name_lists_available_models():
    with pytest.raises(ValueError, match="unknown model 'unet3000'") as err:
        create_model("unet3000")
    for name in ALL_MODELS:
        assert name in str(err.value)


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        register_model("heatmap_unet")(lambda **kw: nn.Identity())


@pytest.mark.parametrize("name", MODELS)
def test_forward_shape_attributes_and_split(name):
    model = tiny(name).eval()
    assert model.kind in {k.value for k in ModelKind}
    assert type(model.kind) is str
    assert model.output_stride in (1, 2, 4)
    assert model.required_divisor in (16, 32)
    s = model.output_stride
    with torch.inference_mode():
        for shape in [(2, 1, 64, 64), (1, 1, 96, 64)]:
            x = torch.randn(shape)
            y = model(x)
            assert y.shape == (shape[0], model.out_channels, shape[2] // s, shape[3] // s)
            assert torch.isfinite(y).all(), "output contains NaN or inf"
            assert torch.equal(model.forward_head(model.forward_features(x)), y)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("stride", [2, 4])
def test_output_stride(name, stride):
    model = tiny(name, output_stride=stride).eval()
    assert model.output_stride == stride
    with torch.inference_mode():
        y = model(torch.randn(1, 1, 64, 96))
    assert y.shape == (1, model.out_channels, 64 // stride, 96 // stride)


def test_kinds_and_defaults():
    expected = {
        "heatmap_unet": "heatmap",
        "dsnt_unet": "dsnt",
        "seg_unet": "segmentation",
        "transunet": "heatmap",
        "transunet_seg": "segmentation",
        "mobilenet_unet": "heatmap",
    }
    for name, kind in expected.items():
        model = tiny(name)
        assert model.kind == kind, name
        assert model.out_channels == 3 and model.in_channels == 1 and model.output_stride == 1
    assert tiny("transunet", kind="segmentation").kind == "segmentation"


@pytest.mark.parametrize("name", MODELS)
def test_gradients_reach_every_parameter(name):
    model = tiny(name).train()
    model(torch.randn(2, 1, 64, 64)).mean().backward()
    conv = first_conv(model)
    assert conv.in_channels == 1
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()
    assert conv.weight.grad.abs().sum() > 0
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unused, f"parameters without gradient: {unused}"


@pytest.mark.parametrize("name", MODELS)
def test_train_and_eval_modes(name):
    model = tiny(name)
    model.train()
    y_train = model(torch.randn(2, 1, 64, 64))
    assert y_train.requires_grad
    model.eval()
    with torch.inference_mode():
        x = torch.randn(1, 1, 64, 64)
        a, b = model(x), model(x)
    assert a.shape[0] == 1 and torch.equal(a, b)


@pytest.mark.parametrize("name", MODELS)
def test_bad_input_size_gives_padding_hint(name):
    model = tiny(name).eval()
    d = model.required_divisor
    h, w = 64, 72
    hint = f"expected multiples of {d}; pad to ({math.ceil(h / d) * d}, {math.ceil(w / d) * d})"
    with pytest.raises(ValueError, match=re.escape(hint)):
        model(torch.zeros(1, 1, h, w))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        model(torch.zeros(1, 3, 64, 64))


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("heatmap_unet", {"output_stride": 3}, "output_stride"),
        ("heatmap_unet", {"features": 0}, "features"),
        ("heatmap_unet", {"out_channels": 0}, "out_channels"),
        ("heatmap_unet", {"upsample": "nearest"}, "upsample"),
        ("heatmap_unet", {"img_size": 100}, "img_size"),
        ("transunet", {"kind": "detection"}, "kind"),
        ("transunet", {"embed_dim": 30, "num_heads": 4}, "divisible by num_heads"),
        ("transunet", {"img_size": 70}, "img_size"),
        ("mobilenet_unet", {"img_size": 48}, "multiples of 32"),
    ],
)
def test_invalid_arguments(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_model(name, **kwargs)


def test_bilinear_upsampling_variant():
    model = tiny("heatmap_unet", upsample="bilinear", output_stride=2).eval()
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in model.modules())
    with torch.inference_mode():
        assert model(torch.randn(1, 1, 64, 64)).shape == (1, 3, 32, 32)


def test_transunet_position_embedding_is_resized():
    model = tiny("transunet").eval()
    assert model.pos_embed.shape[-2:] == (4, 4)  # img_size 64 / 16
    assert torch.equal(model.position_embedding(4, 4), model.pos_embed)
    resized = torch.nn.functional.interpolate(model.pos_embed, size=(4, 4), mode="bilinear", align_corners=False)
    assert torch.allclose(resized, model.pos_embed, atol=1e-7)  # the traced path is the identity here
    assert model.position_embedding(6, 8).shape == (1, 32, 6, 8)


@pytest.mark.parametrize("name", MODELS)
def test_construction_is_deterministic_under_seed(name):
    a, b, c = tiny(name, seed=3).state_dict(), tiny(name, seed=3).state_dict(), tiny(name, seed=4).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the brief mandates the legacy exporter
@pytest.mark.parametrize("name", MODELS)
def test_onnx_runtime_parity(name):
    ort = pytest.importorskip("onnxruntime")
    model = tiny(name).eval()
    buf = io.BytesIO()
    torch.onnx.export(
        model,
        torch.randn(1, 1, 64, 64),
        buf,
        dynamo=False,
        opset_version=17,
        input_names=["image"],
        output_names=["output"],
        dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "h", 3: "w"}},
    )
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    # The fixed export size, then another batch and size through the dynamic axes.
    for shape in [(1, 1, 64, 64), (2, 1, 96, 128)]:
        x = torch.randn(shape)
        with torch.inference_mode():
            expected = model(x).numpy()
        (got,) = session.run(None, {"image": x.numpy()})
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
