"""MobileNetV2 encoder: torchvision-compatible names and shapes, ImageNet weight loading to 1 channel."""

from __future__ import annotations

import pytest
import torch

from partus.models import MobileNetUNet, create_model, load_imagenet_encoder
from partus.models.mobilenet import MobileNetV2Encoder

#: A few (key, shape) pairs of ``torchvision.models.mobilenet_v2().state_dict()``.
TORCHVISION_SHAPES = {
    "features.0.0.weight": (32, 3, 3, 3),
    "features.1.conv.0.0.weight": (32, 1, 3, 3),
    "features.1.conv.1.weight": (16, 32, 1, 1),
    "features.2.conv.0.0.weight": (96, 16, 1, 1),
    "features.14.conv.1.0.weight": (576, 1, 3, 3),
    "features.17.conv.2.weight": (320, 960, 1, 1),
    "features.17.conv.3.running_var": (320,),
    "features.18.0.weight": (1280, 320, 1, 1),
}


def random_torchvision_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A randomly filled state dict with torchvision's mobilenet_v2 keys and shapes (incl. classifier)."""
    g = torch.Generator().manual_seed(seed)
    shapes = {f"features.{k}": v.shape for k, v in MobileNetV2Encoder(3).features.state_dict().items()}
    shapes |= {"classifier.1.weight": (1000, 1280), "classifier.1.bias": (1000,)}
    out = {}
    for k, shape in shapes.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(100)
        elif k.endswith("running_var"):
            out[k] = torch.rand(shape, generator=g) + 0.5
        else:
            out[k] = torch.randn(shape, generator=g)
    return out


def test_encoder_matches_torchvision_layout():
    encoder = MobileNetV2Encoder(3)
    # torchvision documents 3,504,872 parameters for mobilenet_v2; its classifier has 1280 * 1000 + 1000.
    assert sum(p.numel() for p in encoder.parameters()) == 3_504_872 - 1_281_000
    keys = {f"features.{k}": tuple(v.shape) for k, v in encoder.features.state_dict().items()}
    assert len(keys) == 312
    for key, shape in TORCHVISION_SHAPES.items():
        assert keys[key] == shape, key


def test_load_imagenet_encoder_maps_keys_and_averages_rgb():
    sd = random_torchvision_state_dict()
    model = create_model("mobilenet_unet", features=8)
    decoder_before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    assert load_imagenet_encoder(model, sd) is model
    own = model.state_dict()
    torch.testing.assert_close(own["encoder.features.0.0.weight"], sd["features.0.0.weight"].mean(1, keepdim=True))
    for key in ("features.1.conv.1.weight", "features.18.0.weight", "features.17.conv.3.running_var"):
        assert torch.equal(own[f"encoder.{key}"], sd[key])
    assert all(torch.equal(v, decoder_before[k]) for k, v in model.decoder.state_dict().items())
    with torch.inference_mode():
        assert model.eval()(torch.randn(1, 1, 64, 64)).shape == (1, 3, 64, 64)


def test_load_imagenet_encoder_sum_and_three_channels():
    sd = random_torchvision_state_dict()
    gray = load_imagenet_encoder(MobileNetUNet(features=8), sd, rgb_reduction="sum")
    torch.testing.assert_close(gray.encoder.features[0][0].weight, sd["features.0.0.weight"].sum(1, keepdim=True))
    rgb = load_imagenet_encoder(MobileNetUNet(in_channels=3, features=8), sd)
    assert torch.equal(rgb.encoder.features[0][0].weight, sd["features.0.0.weight"])


def test_load_imagenet_encoder_accepts_missing_batch_counters():
    sd = {k: v for k, v in random_torchvision_state_dict().items() if not k.endswith("num_batches_tracked")}
    load_imagenet_encoder(MobileNetUNet(features=8), sd)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda sd: sd.pop("features.5.conv.1.0.weight"), "missing"),
        (lambda sd: sd.__setitem__("backbone.extra", torch.zeros(1)), "unexpected"),
        (lambda sd: sd.__setitem__("features.18.0.weight", torch.zeros(640, 320, 1, 1)), "wrong shape"),
    ],
)
def test_load_imagenet_encoder_rejects_mismatches(edit, match):
    sd = random_torchvision_state_dict()
    edit(sd)
    with pytest.raises(ValueError, match=match):
        load_imagenet_encoder(MobileNetUNet(features=8), sd)


def test_load_imagenet_encoder_needs_a_mobilenet_unet():
    with pytest.raises(ValueError, match="MobileNetUNet"):
        load_imagenet_encoder(create_model("heatmap_unet"), random_torchvision_state_dict())


def test_imagenet_norm_normalises_inside_the_network():
    from partus.models.mobilenet import IMAGENET_GRAY_MEAN, IMAGENET_GRAY_STD

    plain = create_model("mobilenet_unet", features=8).eval()
    normed = create_model("mobilenet_unet", features=8, imagenet_norm=True).eval()
    normed.load_state_dict(plain.state_dict())
    x = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        torch.testing.assert_close(normed(x), plain((x - IMAGENET_GRAY_MEAN) / IMAGENET_GRAY_STD))


def test_config_encoder_weights_load_before_training(tmp_path):
    from partus.errors import InputError
    from partus.train.fit import _load_encoder

    sd = random_torchvision_state_dict(3)
    torch.save(sd, tmp_path / "mnv2.pth")
    model = create_model("mobilenet_unet", features=8, kind="segmentation", out_channels=3)
    _load_encoder(model, str(tmp_path / "mnv2.pth"))
    assert torch.equal(model.state_dict()["encoder.features.18.0.weight"], sd["features.18.0.weight"])
    # "sum": a gray image copied into R, G, B gives the pretrained first-layer response
    torch.testing.assert_close(
        model.state_dict()["encoder.features.0.0.weight"], sd["features.0.0.weight"].sum(1, keepdim=True)
    )
    with pytest.raises(InputError, match="file not found"):
        _load_encoder(model, str(tmp_path / "missing.pth"))
    with pytest.raises(InputError, match="only for mobilenet_unet"):
        _load_encoder(create_model("seg_unet", features=4), str(tmp_path / "mnv2.pth"))
