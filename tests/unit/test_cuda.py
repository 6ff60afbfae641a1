"""The CUDA paths (SDPA attention, the fused CE under autocast, GPU device stats, evaluation on the GPU).

CI has no GPU, so these skip there; they are run on a lent GPU machine (README, "GPU check"). Each compares the
GPU against the CPU path the rest of the suite pins down.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.events import DeviceStats, EpochEnd
from engine.models import build_model
from engine.models import losses as losses_module
from engine.models.losses import linear_cross_entropy
from engine.training import seed_everything, train
from test_models import NUM_ITEMS, SEQ, make
from tests.unit.test_losses import cycle_dataset
from tests.unit.test_trainer import fixed_scores, tiny_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
CUDA = torch.device("cuda")


@pytest.mark.parametrize("chunk_elements", [7 * 50, 1 << 26])  # uneven chunks, everything at once
def test_fused_cross_entropy_on_cuda_matches_autograd(monkeypatch, chunk_elements):
    monkeypatch.setattr(losses_module, "CE_CHUNK_ELEMENTS_CUDA", chunk_elements)
    torch.manual_seed(0)
    h = torch.randn(23, 8, device=CUDA, requires_grad=True)
    weight = torch.randn(50, 8, device=CUDA, requires_grad=True)
    targets = torch.randint(0, 50, (23,), device=CUDA)
    fused = linear_cross_entropy(h, weight, targets)
    (fused * 3.0).backward()
    grads = h.grad.clone(), weight.grad.clone()
    h.grad = weight.grad = None
    reference = F.cross_entropy(h @ weight.T, targets)
    (reference * 3.0).backward()
    assert torch.allclose(fused, reference, atol=1e-5)
    assert torch.allclose(grads[0], h.grad, atol=1e-5) and torch.allclose(grads[1], weight.grad, atol=1e-5)


def test_fused_cross_entropy_under_bf16_autocast_stays_close_to_float32():
    torch.manual_seed(0)
    h = torch.randn(64, 32, device=CUDA, requires_grad=True)
    weight = torch.randn(500, 32, device=CUDA, requires_grad=True)
    targets = torch.randint(1, 500, (64,), device=CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        mixed = linear_cross_entropy(h, weight, targets)
    mixed.backward()
    reference = F.cross_entropy(h.detach() @ weight.detach().T, targets)
    assert mixed.dtype == torch.float32 and torch.isfinite(h.grad).all() and torch.isfinite(weight.grad).all()
    assert abs(mixed.item() - reference.item()) < 0.05 * reference.item()


def test_sasrec_on_cuda_with_dropout_never_sees_later_items():
    model = make("sasrec", dropout=0.3).to(CUDA).train()  # SDPA with its own dropout on CUDA
    seq = SEQ.to(CUDA)
    torch.manual_seed(7)
    before = model(seq)
    t = 4
    changed = seq.clone()
    changed[:, t + 1 :] = torch.randint(1, NUM_ITEMS + 1, changed[:, t + 1 :].shape, device=CUDA)
    torch.manual_seed(7)
    after = model(changed)
    assert torch.allclose(before[:, : t + 1], after[:, : t + 1], atol=1e-5)
    assert not torch.allclose(before[:, t + 1 :], after[:, t + 1 :], atol=1e-5)


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "bert4rec"])
def test_eval_mode_outputs_on_cuda_match_the_cpu(backbone):
    model = make(backbone)
    on_cpu = model(SEQ)
    on_gpu = model.to(CUDA)(SEQ.to(CUDA)).cpu()
    assert torch.allclose(on_cpu, on_gpu, atol=1e-4)


def test_training_on_cuda_learns_and_reports_gpu_memory():
    dataset, cfg = cycle_dataset(), tiny_config(epochs=3)
    cfg.train.device = "cuda"
    seed_everything(0)
    model = build_model(cfg.model, dataset.num_items)
    events = []
    train(model, dataset, cfg, fixed_scores(0.1, 0.2, 0.3), events.append)
    assert next(model.parameters()).device.type == "cuda"
    losses = [e.train_loss for e in events if isinstance(e, EpochEnd)]
    assert len(losses) == 3 and losses[-1] < losses[0]
    stats = [e for e in events if isinstance(e, DeviceStats)][-1]
    assert stats.device.startswith("cuda:0 (")
    assert 0 < stats.memory_used_mb < stats.memory_total_mb


def test_full_ranking_on_cuda_gives_the_cpu_ranks():
    from engine.config import EvalConfig
    from engine.evaluation.evaluator import RankingEvaluator

    dataset, cfg = cycle_dataset(), tiny_config()
    seed_everything(0)
    model = build_model(cfg.model, dataset.num_items).eval()
    evaluator = RankingEvaluator(dataset, "test", EvalConfig(exclude_history=True), cfg.model.max_len)
    on_cpu = evaluator.ranks(model, "cpu")
    on_gpu = evaluator.ranks(model.to(CUDA), "cuda")
    assert (on_cpu != on_gpu).sum() <= 1  # at most one near-tie broken the other way


def test_fused_cross_entropy_under_autocast_takes_a_bf16_table_and_fp32_states():
    """concat fusion and the adapters produce their table in bf16 under autocast; h stays fp32 (LayerNorm)."""
    torch.manual_seed(0)
    h = torch.randn(64, 32, device=CUDA, requires_grad=True)
    mix = torch.nn.Linear(32, 32).to(CUDA)
    table = torch.randn(500, 32, device=CUDA)
    targets = torch.randint(1, 500, (64,), device=CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        fused = linear_cross_entropy(h, mix(table), targets)
    fused.backward()
    reference = F.cross_entropy(h.detach() @ mix(table).detach().T, targets)
    assert abs(fused.item() - reference.item()) < 0.05 * reference.item()
    assert torch.isfinite(h.grad).all() and mix.weight.grad is not None and torch.isfinite(mix.weight.grad).all()
