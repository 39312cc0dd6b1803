"""``train.ema``: the checkpoints hold an exponential moving average of the weights, updated every step."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from partus.config import load_config
from partus.errors import InputError
from partus.train.fit import fit
from partus.train.module import LandmarkModule

OVER = ["train.epochs=2", "data.n_phantoms=24", "model.kwargs={features: 4}", "train.batch_size=8"]
PARAM = "model.head.weight"


class _Record(L.Callback):
    """The raw (trained) value of one parameter after every optimiser step."""

    def __init__(self):
        self.seen = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen.append(dict(pl_module.named_parameters())[PARAM].detach().clone())


def test_checkpoint_holds_the_moving_average_of_every_step(tmp_path):
    decay = 0.8
    cfg = load_config("configs/smoke.yaml", [*OVER, f"train.ema={decay}"])
    rec = _Record()
    res = fit(cfg, tmp_path / "run", progress=False, callbacks=[rec])
    assert len(rec.seen) >= 4
    expected = rec.seen[0]  # the first update copies the weights, then avg <- d avg + (1 - d) w
    for w in rec.seen[1:]:
        expected = decay * expected + (1 - decay) * w
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    torch.testing.assert_close(ckpt["state_dict"][PARAM], expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(ckpt["current_model_state"][PARAM], rec.seen[-1], rtol=0, atol=0)
    assert not torch.equal(expected, rec.seen[-1])  # the average is not the last step's weights
    # What inference loads (and what fit returns) is the average.
    loaded = LandmarkModule.load_from_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu")
    torch.testing.assert_close(dict(loaded.named_parameters())[PARAM], expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(dict(res.module.named_parameters())[PARAM], expected, rtol=0, atol=1e-6)


class _Interrupt(L.Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            raise RuntimeError("simulated interruption")


def test_interrupted_run_with_ema_resumes_to_the_same_average(tmp_path):
    cfg = load_config("configs/smoke.yaml", [*OVER, "train.ema=0.8"])
    straight = fit(cfg, tmp_path / "straight", progress=False)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        fit(cfg, tmp_path / "resumed", progress=False, callbacks=[_Interrupt()])
    resumed = fit(cfg, tmp_path / "resumed", progress=False)
    a, b = straight.module.state_dict(), resumed.module.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


@pytest.mark.parametrize("bad", ["1.0", "-0.1"])
def test_decay_outside_zero_one_is_refused(bad):
    with pytest.raises(InputError, match="ema"):
        load_config("configs/smoke.yaml", [f"train.ema={bad}"])
