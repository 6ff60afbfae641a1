"""Trainer, batches, device and seeding: repeatability, checkpoints, early stopping, interruption, events."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.config import RunConfig
from engine.events import DeviceStats, EpochEnd, EpochStarted, StepLoss
from engine.models import build_model
from engine.training import SequenceBatcher, TrainingInterrupted, device_stats, resolve_device, seed_everything, train
from engine.training.checkpoint import RunCheckpoints, sha256_of
from tests.unit.test_losses import cycle_dataset


def tiny_config(backbone: str = "sasrec", epochs: int = 3, patience: int = 10) -> RunConfig:
    cfg = RunConfig()
    cfg.model.backbone, cfg.model.hidden_size, cfg.model.num_layers, cfg.model.max_len = backbone, 16, 1, 8
    cfg.train.epochs, cfg.train.batch_size, cfg.train.patience, cfg.train.device = epochs, 16, patience, "cpu"
    # What these tests compare (rates, losses, resumed runs) is fp32 at a constant rate, whatever the defaults are.
    cfg.train.lr_schedule, cfg.train.warmup_epochs, cfg.train.amp_cpu = "constant", 0, False
    return cfg


def fixed_scores(*scores: float):
    """A validation function that reports the given NDCG@10 values, one per epoch."""
    remaining = list(scores)
    return lambda model: {"NDCG@10": remaining.pop(0), "HR@10": 0.5}


def step_losses(cfg: RunConfig) -> list[float]:
    dataset = cycle_dataset()
    seed_everything(123)
    model = build_model(cfg.model, dataset.num_items)
    losses: list[float] = []
    train(
        model,
        dataset,
        cfg,
        fixed_scores(0.1, 0.2),
        lambda e: losses.append(e.loss) if isinstance(e, StepLoss) else None,
    )
    return losses


@pytest.mark.parametrize("backbone,loss", [("sasrec", "bce"), ("bert4rec", "sampled-softmax")])
def test_same_seed_gives_identical_losses(backbone, loss):
    cfg = tiny_config(backbone, epochs=2)
    cfg.train.loss = loss
    first, second = step_losses(cfg), step_losses(cfg)
    assert first == second and len(first) == 6
    cfg.train.seed += 1
    assert step_losses(cfg) != first


def test_checkpoint_round_trips_and_best_weights_come_back(tmp_path: Path):
    dataset, cfg = cycle_dataset(), tiny_config(epochs=3)
    model = build_model(cfg.model, dataset.num_items)
    snapshots = []

    def validate(m):  # epoch 2 is best; remember its weights
        snapshots.append({k: v.clone() for k, v in m.state_dict().items()})
        return {"NDCG@10": [0.1, 0.3, 0.2][len(snapshots) - 1]}

    recorded = []
    checkpoints = RunCheckpoints(tmp_path / "ckpt", 7, "tok", lambda *args: recorded.append(args))
    result = train(model, dataset, cfg, validate, lambda e: None, checkpoints=checkpoints)
    path = result.checkpoint_path
    assert (
        result.best_epoch == 2
        and result.best_valid == {"NDCG@10": 0.3}
        and path == tmp_path / "ckpt" / "run-7-tok-e2.pt"
    )
    saved = torch.load(path, weights_only=True)
    for key, value in model.state_dict().items():
        assert torch.equal(saved[key], value) and torch.equal(snapshots[1][key], value)
    assert not torch.equal(snapshots[2]["encoder.positions.weight"], model.state_dict()["encoder.positions.weight"])
    state = tmp_path / "ckpt" / "run-7-tok-state-e3.pt"
    assert sorted(path.parent.iterdir()) == [path, state]  # older files replaced, no partial file left behind
    assert [(kind, p.name, epoch) for kind, p, _sha, epoch in recorded] == [
        ("checkpoint", "run-7-tok-e1.pt", 1),
        ("training_state", "run-7-tok-state-e1.pt", 1),
        ("checkpoint", "run-7-tok-e2.pt", 2),
        ("training_state", "run-7-tok-state-e2.pt", 2),
        ("training_state", "run-7-tok-state-e3.pt", 3),
    ]
    assert all(sha == sha256_of(p) for kind, p, sha, _ in (recorded[2], recorded[4]))  # the files kept


def test_early_stopping_after_patience_epochs_without_improvement():
    dataset, cfg = cycle_dataset(), tiny_config(epochs=20, patience=3)
    model = build_model(cfg.model, dataset.num_items)
    result = train(model, dataset, cfg, fixed_scores(0.1, 0.4, 0.3, 0.4, 0.2, 0.9), lambda e: None)
    assert (result.best_epoch, result.epochs_run, result.stopped_early) == (2, 5, True)
    assert result.stop_reason == "patience" and [h["epoch"] for h in result.history] == [1, 2, 3, 4, 5]


def test_time_budget_stops_after_the_epoch_that_crosses_it():
    dataset, cfg = cycle_dataset(), tiny_config(epochs=20)
    cfg.train.max_train_seconds = 0.0
    result = train(build_model(cfg.model, dataset.num_items), dataset, cfg, fixed_scores(*[0.1] * 20), lambda e: None)
    assert result.epochs_run == 1 and result.stop_reason == "time-budget"


def test_should_stop_raises_training_interrupted_between_steps(tmp_path: Path):
    dataset, cfg = cycle_dataset(), tiny_config(epochs=5)
    model = build_model(cfg.model, dataset.num_items)
    steps: list[int] = []
    on_event = lambda e: steps.append(e.step) if isinstance(e, StepLoss) else None  # noqa: E731
    checkpoints = RunCheckpoints(tmp_path, 1, "tok")
    with pytest.raises(TrainingInterrupted) as caught:
        train(
            model,
            dataset,
            cfg,
            fixed_scores(0.5, 0.6),
            on_event,
            should_stop=lambda: len(steps) >= 4,
            checkpoints=checkpoints,
        )
    assert len(steps) == 4  # 3 steps per epoch: stopped after the first step of epoch 2
    assert caught.value.result.epochs_run == 1 and caught.value.result.best_epoch == 1
    saved = torch.load(checkpoints.best_path, weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())  # best weights restored


def test_events_arrive_in_order_with_device_stats():
    dataset, cfg = cycle_dataset(), tiny_config(epochs=2)
    events = []
    train(build_model(cfg.model, dataset.num_items), dataset, cfg, fixed_scores(0.2, 0.1), events.append)
    kinds = [type(e).__name__ for e in events]
    assert kinds == (["EpochStarted"] + ["StepLoss"] * 3 + ["EpochEnd", "DeviceStats"]) * 2
    started, ends = events[0], [e for e in events if isinstance(e, EpochEnd)]
    assert isinstance(started, EpochStarted) and started.steps == 3
    assert [e.is_best for e in ends] == [True, False] and ends[0].valid["NDCG@10"] == 0.2
    stats = [e for e in events if isinstance(e, DeviceStats)][0]
    assert stats.device == "cpu" and stats.memory_used_mb > 0 and stats.memory_total_mb > stats.memory_used_mb


def test_validation_without_ndcg_at_10_is_a_clear_error():
    dataset, cfg = cycle_dataset(), tiny_config()
    with pytest.raises(KeyError, match="NDCG@10"):
        train(build_model(cfg.model, dataset.num_items), dataset, cfg, lambda m: {"HR@10": 0.1}, lambda e: None)


def test_causal_batches_shift_targets_and_trim_to_the_longest_row():
    dataset = cycle_dataset(num_users=10)
    batcher = SequenceBatcher(dataset, "causal", max_len=6, batch_size=4, seed=0)
    batches = list(batcher.epoch())
    assert len(batches) == len(batcher) == 3
    seen = 0
    for batch in batches:
        inputs, targets = batch.inputs.numpy(), batch.targets.numpy()
        assert inputs.shape == targets.shape and inputs.shape[1] <= 6
        assert ((inputs != 0) == (targets != 0)).all() and (inputs[:, -1] != 0).all()
        real = inputs != 0
        assert (targets[real] == inputs[real] % 12 + 1).all()  # the cycle's next item
        seen += len(inputs)
    assert seen == 10
    order = [b.inputs for b in SequenceBatcher(dataset, "causal", 6, 4, seed=0).epoch()]
    assert all(torch.equal(a, b.inputs) for a, b in zip(order, batches))


def test_short_batches_are_not_padded_to_max_len():
    dataset = cycle_dataset(num_users=4)
    # training parts of length 5, 3, 4 and 1: inputs of 4, 2 and 3 items; the single item predicts nothing
    dataset.sequences = [np.arange(1, 8), np.arange(1, 6), np.arange(1, 7), np.arange(1, 4)]
    batcher = SequenceBatcher(dataset, "causal", max_len=50, batch_size=4, seed=0)
    (batch,) = batcher.epoch()
    assert batch.inputs.shape == (3, 4)


def test_masked_batches_mask_at_least_one_item_and_target_only_masks():
    dataset = cycle_dataset(num_users=40)
    batcher = SequenceBatcher(dataset, "masked", max_len=8, batch_size=40, mask_prob=0.05, seed=3)
    first, second = next(batcher.epoch()), next(batcher.epoch())
    mask_token = dataset.num_items + 1
    for batch in (first, second):
        masked = batch.inputs == mask_token
        assert masked.any(dim=1).all()
        assert ((batch.targets != 0) == masked).all()
        assert (batch.targets[masked] >= 1).all()
    assert not torch.equal(first.inputs, second.inputs)  # fresh masks each epoch


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match=r"train\.device.*'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"train\.device"):
            resolve_device("cuda:0")
    stats = device_stats(torch.device("cpu"))
    assert stats.utilization is not None and 0.0 <= stats.utilization <= 100.0
