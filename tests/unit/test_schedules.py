"""Learning-rate schedules, validation every N epochs and bf16 autocast on a CPU: what each changes in training."""

from __future__ import annotations

import math

import pytest
import torch

from engine import registry
from engine.config import ConfigError, RunConfig, validate_config
from engine.events import EpochEnd, Status
from engine.models import build_model
from engine.training import schedules, train, trainer
from tests.unit.test_losses import cycle_dataset
from tests.unit.test_trainer import fixed_scores, step_losses, tiny_config


def test_constant_and_cosine_against_their_definitions():
    assert [schedules.constant(s, 10, 0) for s in range(10)] == [1.0] * 10
    assert [schedules.constant(s, 10, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    # cosine over steps 0..10 without warm-up: 1 at the start, 1/2 half way, 0 at the end
    assert schedules.cosine(0, 10, 0) == 1.0
    assert schedules.cosine(5, 10, 0) == pytest.approx(0.5)
    assert schedules.cosine(10, 10, 0) == pytest.approx(0.0)
    assert schedules.cosine(2, 10, 0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.2)))
    # warm-up first, then the cosine over the steps left
    assert [schedules.cosine(s, 10, 2) for s in (0, 1)] == [0.5, 1.0]
    assert schedules.cosine(6, 10, 2) == pytest.approx(0.5)
    assert registry.choices("lr_schedule") == ("constant", "cosine")


def recorded_rates(monkeypatch, cfg: RunConfig) -> list[float]:
    """The learning rate of every optimizer step of a tiny run."""
    rates: list[float] = []

    class RecordingAdamW(torch.optim.AdamW):
        def step(self, closure=None):
            rates.append(self.param_groups[0]["lr"])
            return super().step(closure)

    monkeypatch.setattr(trainer.torch.optim, "AdamW", RecordingAdamW)
    dataset = cycle_dataset()
    train(build_model(cfg.model, dataset.num_items), dataset, cfg, fixed_scores(*[0.1] * 20), lambda e: None)
    return rates


def test_the_trainer_sets_each_steps_rate_from_the_schedule(monkeypatch):
    cfg = tiny_config(epochs=4)  # cycle_dataset: 3 steps per epoch
    cfg.train.lr = 0.01
    assert recorded_rates(monkeypatch, cfg) == [0.01] * 12  # the default: constant, as before schedules existed
    cfg.train.lr_schedule, cfg.train.warmup_epochs = "cosine", 1
    rates = recorded_rates(monkeypatch, cfg)
    assert rates == pytest.approx([0.01 * schedules.cosine(s, 12, 3) for s in range(12)])
    assert rates[:3] == pytest.approx([0.01 / 3, 0.02 / 3, 0.01]) and rates[-1] < 0.001


def test_bad_schedule_settings_are_named_before_any_work():
    cfg = RunConfig()
    cfg.train.lr_schedule = "cosin"
    with pytest.raises(ConfigError, match="train.lr_schedule"):
        validate_config(cfg)
    cfg = RunConfig()
    cfg.train.warmup_epochs = -1
    with pytest.raises(ConfigError, match="train.warmup_epochs"):
        validate_config(cfg)
    cfg = RunConfig()
    cfg.eval.every = 0
    with pytest.raises(ConfigError, match="eval.every"):
        validate_config(cfg)


def train_validating(cfg: RunConfig, scores: list[float]):
    """A tiny run whose validation returns `scores` in turn: (the result, the epochs validated, every EpochEnd)."""
    dataset, validated, ends = cycle_dataset(), [], []
    remaining = iter(scores)

    def validate(model):
        validated.append(len(ends) + 1)  # this epoch's EpochEnd is not sent yet
        return {"NDCG@10": next(remaining)}

    def on_event(event):
        if isinstance(event, EpochEnd):
            ends.append(event)

    return train(build_model(cfg.model, dataset.num_items), dataset, cfg, validate, on_event), validated, ends


def test_validation_every_n_epochs_and_wherever_the_run_stops():
    cfg = tiny_config(epochs=7)
    cfg.eval.every = 3
    result, validated, ends = train_validating(cfg, [0.1, 0.2, 0.3])
    assert validated == [3, 6, 7]  # every 3rd epoch and the last
    assert [bool(e.valid) for e in ends] == [False, False, True, False, False, True, True]
    assert result.best_epoch == 7 and result.epochs_run == 7
    # patience 2 with the best at epoch 3: the run stops at epoch 5, and that epoch is validated too
    cfg.train.epochs, cfg.train.patience = 20, 2
    result, validated, _ = train_validating(cfg, [0.5, 0.1, 0.1])
    assert validated == [3, 5] and (result.best_epoch, result.epochs_run, result.stop_reason) == (3, 5, "patience")


@pytest.mark.skipif(not trainer.cpu_has_native_bf16(), reason="this CPU has no native bf16")
def test_amp_cpu_trains_in_bf16_close_to_fp32():
    cfg = tiny_config(epochs=2)
    cfg.train.loss = "bce"
    fp32 = step_losses(cfg)
    cfg.train.amp_cpu = True
    bf16 = step_losses(cfg)
    assert bf16 != fp32  # autocast was on: bf16 rounding shows in the losses
    assert bf16 == pytest.approx(fp32, rel=0.05)


def test_amp_cpu_without_native_bf16_stays_fp32(monkeypatch):
    cfg = tiny_config(epochs=2)
    cfg.train.loss = "bce"
    fp32 = step_losses(cfg)
    monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda: False)
    cfg.train.amp_cpu = True
    assert step_losses(cfg) == fp32  # emulated bf16 would be slower than fp32: it is not used
    dataset, said = cycle_dataset(), []
    train(build_model(cfg.model, dataset.num_items), dataset, cfg, fixed_scores(0.1, 0.2), said.append)
    notices = [e.message for e in said if isinstance(e, Status) and "bf16" in e.message]
    assert notices == ["train.amp_cpu: this CPU has no native bf16 (AVX512-BF16 or AMX); training in fp32"]
