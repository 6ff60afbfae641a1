"""Full-ranking and sampled evaluation, and recommend(), on fake backbones whose scores are set by hand."""

import numpy as np
import pytest
import torch

from engine.config import EvalConfig
from engine.data.dataset import SequenceDataset
from engine.evaluation import RankingEvaluator, evaluate, recommend
from engine.evaluation.metrics import popularity_head_mask
from engine.models.base import IdEmbedding, SequentialBackbone

NEG_INF = float("-inf")


class FakeScoringBackbone(SequentialBackbone):
    """Scores item j as `by_item[i, j]` summed over the history's items i ("sum") or for its last item only ("last").

    The item table is the identity, so scores are exactly the hand-set numbers. Every input is recorded.
    """

    def __init__(self, by_item: torch.Tensor, pool: str = "last"):
        super().__init__()
        n = by_item.shape[0] - 1
        self.items = IdEmbedding(n, n + 1)
        with torch.no_grad():
            self.items.table.weight.copy_(torch.eye(n + 1))
        by_item = by_item.clone().float()
        by_item[0] = 0.0  # a padding position contributes nothing
        self.register_buffer("by_item", by_item)
        self.pool = pool
        self.seen: list[torch.Tensor] = []

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        self.seen.append(seq.clone())
        rows = self.by_item[seq]  # [B, L, N+1]
        return rows.cumsum(1) if self.pool == "sum" else rows


def make_dataset(sequences: list[list[int]], num_items: int) -> SequenceDataset:
    item_ids = ["[PAD]"] + [f"i{j}" for j in range(1, num_items + 1)]
    return SequenceDataset(
        name="tiny",
        item_ids=item_ids,
        user_ids=[f"u{u}" for u in range(len(sequences))],
        sequences=[np.array(s, dtype=np.int64) for s in sequences],
        item_text=[{}] + [{"title": f"Item {j}"} for j in range(1, num_items + 1)],
        fingerprint="test",
    )


def scores_after(num_items: int, rows: dict[int, list[float]]) -> torch.Tensor:
    """[N+1, N+1] table; rows[i] = scores of items 0..N after a history ending in item i."""
    table = torch.zeros(num_items + 1, num_items + 1)
    for last, values in rows.items():
        table[last] = torch.tensor(values)
    return table


# u0: valid = [1, 2, 3] -> 4, test = [1, 2, 3, 4] -> 5.  u1: valid = [2, 4] -> 2 (a repeat), test = [2, 4, 2] -> 6.
TINY = [[1, 2, 3, 4, 5], [2, 4, 2, 6]]
TINY_SCORES = {
    #    pad   1    2    3    4    5    6
    3: [100.0, 9.0, 8.0, 7.0, 5.0, 6.0, 1.0],  # padding scores highest: it must never be ranked
    4: [100.0, 5.0, 3.0, 1.0, 10.0, 2.0, 0.0],
    2: [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
}


def tiny_ranks(split: str, exclude: bool, **cfg) -> list[int]:
    dataset = make_dataset(TINY, 6)
    model = FakeScoringBackbone(scores_after(6, TINY_SCORES))
    return (
        RankingEvaluator(dataset, split, EvalConfig(exclude_history=exclude, **cfg), max_len=50)
        .ranks(model, "cpu")
        .tolist()
    )


def test_exclusion_changes_rank_and_padding_is_never_ranked():
    # u0 (valid): target 4 scores 5; items 1, 2, 3 (history) and 5 score higher; padding's 100 never counts.
    assert tiny_ranks("valid", exclude=False)[0] == 4
    assert tiny_ranks("valid", exclude=True)[0] == 1


def test_target_in_history_is_never_excluded():
    # u1 (valid): history [2, 4], target 2 again. Item 4 (10) is excluded, item 1 (5) still beats the target (3).
    assert tiny_ranks("valid", exclude=True)[1] == 1
    assert tiny_ranks("valid", exclude=False)[1] == 2


def test_test_history_adds_the_validation_item_and_never_shows_the_test_item():
    dataset = make_dataset(TINY, 6)
    model = FakeScoringBackbone(scores_after(6, TINY_SCORES))
    seen = {}
    for split in ("valid", "test"):
        model.seen.clear()
        RankingEvaluator(dataset, split, EvalConfig(), max_len=50).ranks(model, "cpu")
        assert len(model.seen) == 1  # one batch holds both users
        seen[split] = sorted(tuple(int(x) for x in row if x != 0) for row in model.seen[0])
    assert seen["valid"] == [(1, 2, 3), (2, 4)]
    assert seen["test"] == [(1, 2, 3, 4), (2, 4, 2)]
    # u0 test: after [1, 2, 3, 4] target 5 scores 2; only item 6 (0) is outside the history -> rank 0.
    # u1 test: after [2, 4, 2] target 6 scores 6, the best -> rank 0.
    assert tiny_ranks("test", exclude=True) == [0, 0]
    assert tiny_ranks("test", exclude=False) == [3, 0]  # items 1 (5), 2 (3) and 4 (10) come back


def test_ties_are_pessimistic():
    dataset = make_dataset(TINY, 6)
    constant = FakeScoringBackbone(torch.zeros(7, 7))
    ranks = RankingEvaluator(dataset, "valid", EvalConfig(exclude_history=False), 50).ranks(constant, "cpu")
    assert ranks.tolist() == [5, 5]  # behind all 5 other items
    ranks = RankingEvaluator(dataset, "valid", EvalConfig(exclude_history=True), 50).ranks(constant, "cpu")
    assert ranks.tolist() == [2, 4]  # u0: 1, 2, 3 excluded; u1: 4 excluded (2 is the target)
    metrics = evaluate(constant, dataset, "valid", EvalConfig(ks=[1, 2], exclude_history=False), 50, "cpu")
    assert metrics["HR@2"] == 0.0 and metrics["NDCG@2"] == 0.0


def test_metric_keys_and_user_subset():
    dataset = make_dataset(TINY, 6)
    model = FakeScoringBackbone(scores_after(6, TINY_SCORES))
    metrics = evaluate(model, dataset, "valid", EvalConfig(ks=[1, 2]), 50, "cpu")
    for k in (1, 2):
        for name in ("HR", "NDCG", "MRR"):
            assert {f"{name}@{k}", f"{name}@{k}/head", f"{name}@{k}/tail"} <= set(metrics)
    assert metrics["users"] == 2.0
    # ranks [1, 1]: HR@1 = 0, HR@2 = 1, NDCG@2 = 1 / log2(3)
    assert metrics["HR@1"] == 0.0 and metrics["HR@2"] == 1.0
    assert metrics["NDCG@2"] == pytest.approx(0.6309297536)
    only_u1 = evaluate(model, dataset, "valid", EvalConfig(ks=[2], exclude_history=False), 50, "cpu", users=[1])
    assert only_u1["users"] == 1.0 and only_u1["HR@2"] == 0.0  # u1 alone, rank 2 without exclusion


def test_popularity_groups_follow_the_target_item():
    # Training parts: u0 [1, 1, 1, 2], u1 [1, 3], u2 [4, 5], u3 [2, 6]. Item 1 is the most popular of 10 (20% = 2:
    # items 1 and 2). Valid targets: u0 -> 1 (head), u1 -> 2 (head), u2 -> 7 (tail), u3 -> 8 (tail).
    sequences = [[1, 1, 1, 2, 1, 9], [1, 3, 2, 9], [4, 5, 7, 9], [2, 6, 8, 9]]
    dataset = make_dataset(sequences, 10)
    assert np.flatnonzero(popularity_head_mask(dataset.item_popularity())).tolist() == [1, 2]
    # Every user's history ends in an item whose row ranks item 1 first, 2 second, 7 third, 8 fourth.
    row = [0.0, 10.0, 9.0, 0.0, 0.0, 0.0, 0.0, 8.0, 7.0, 0.0, 0.0]
    model = FakeScoringBackbone(scores_after(10, {last: row for last in (2, 3, 5, 6)}))
    evaluator = RankingEvaluator(dataset, "valid", EvalConfig(ks=[1, 3], exclude_history=False), 50)
    assert evaluator.target_is_head.tolist() == [True, True, False, False]
    assert evaluator.ranks(model, "cpu").tolist() == [0, 1, 2, 3]
    m = evaluator.evaluate(model, "cpu")
    assert (m["users/head"], m["users/tail"]) == (2.0, 2.0)
    assert m["HR@1/head"] == 0.5 and m["HR@1/tail"] == 0.0
    assert m["HR@3/head"] == 1.0 and m["HR@3/tail"] == 0.5
    assert m["MRR@3/tail"] == pytest.approx((1 / 3) / 2)


def random_case(seed: int, num_users: int = 40, num_items: int = 30, integer_scores: bool = False):
    rng = np.random.default_rng(seed)
    sequences = [rng.integers(1, num_items + 1, size=int(rng.integers(3, 25))).tolist() for _ in range(num_users)]
    if integer_scores:  # many exact ties
        table = torch.from_numpy(rng.integers(0, 3, size=(num_items + 1, num_items + 1)).astype(np.float32))
    else:
        table = torch.from_numpy(rng.normal(size=(num_items + 1, num_items + 1)).astype(np.float32))
    return make_dataset(sequences, num_items), FakeScoringBackbone(table, pool="sum")


@torch.no_grad()
def reference_ranks(model, dataset, split: str, exclude: bool, max_len: int) -> list[int]:
    """The definition, one user at a time, without padding or batching."""
    ranks = []
    for u in range(dataset.num_users):
        history = dataset.valid_history(u) if split == "valid" else dataset.test_history(u)
        target = dataset.valid_target(u) if split == "valid" else dataset.test_target(u)
        seq = torch.from_numpy(np.asarray(history[-max_len:])).unsqueeze(0)
        scores = model.score_all(seq)[0].clone()
        if exclude:
            for item in set(history.tolist()) - {target}:
                scores[item] = NEG_INF
        others = [scores[j] for j in range(1, dataset.num_items + 1) if j != target]
        ranks.append(sum(1 for s in others if s >= scores[target]))
    return ranks


@pytest.mark.parametrize("integer_scores", [False, True])
@pytest.mark.parametrize("split", ["valid", "test"])
@pytest.mark.parametrize("exclude", [True, False])
def test_batching_and_sorting_match_a_per_user_loop(integer_scores, split, exclude):
    dataset, model = random_case(seed=7, integer_scores=integer_scores)
    expected = reference_ranks(model, dataset, split, exclude, max_len=8)
    for batch_size in (1, 7, 1024):
        cfg = EvalConfig(exclude_history=exclude, batch_size=batch_size)
        assert RankingEvaluator(dataset, split, cfg, max_len=8).ranks(model, "cpu").tolist() == expected


def test_batches_are_left_padded_to_their_own_longest_history():
    dataset = make_dataset([[1, 2, 3], [1, 2, 3, 4, 5, 6], [4, 5, 6], [1, 2, 3, 4, 5, 6, 7, 1, 2, 3]], 7)
    model = FakeScoringBackbone(torch.zeros(8, 8))
    RankingEvaluator(dataset, "test", EvalConfig(batch_size=2), max_len=6).ranks(model, "cpu")
    assert [tuple(s.shape) for s in model.seen] == [(2, 2), (2, 6)]  # short histories together, long ones cut to 6
    assert model.seen[0].tolist() == [[1, 2], [4, 5]]
    assert model.seen[1].tolist() == [[0, 1, 2, 3, 4, 5], [4, 5, 6, 7, 1, 2]]


def test_sampled_protocol_draws_distinct_negatives_outside_the_history():
    dataset, model = random_case(seed=3, num_items=200)
    cfg = EvalConfig(protocol="sampled", num_sampled=25, batch_size=8)
    evaluator = RankingEvaluator(dataset, "test", cfg, max_len=8)
    negatives = {}
    for batch in evaluator._batches:
        assert batch.negatives.shape == (len(batch.rows), 25)
        for row, drawn in zip(batch.rows, batch.negatives.tolist()):
            user = int(evaluator.users[row])
            assert len(set(drawn)) == 25
            forbidden = set(dataset.test_history(user).tolist()) | {dataset.test_target(user)}
            assert not forbidden & set(drawn)
            assert all(1 <= j <= 200 for j in drawn)
            negatives[user] = drawn
    # The rank counts the negatives that score at least as high as the target.
    ranks = evaluator.ranks(model, "cpu")
    for row, user in enumerate(evaluator.users.tolist()):
        scores = model.score_all(torch.from_numpy(dataset.test_history(user)[-8:]).unsqueeze(0))[0]
        target_score = scores[dataset.test_target(user)]
        assert ranks[row] == sum(1 for j in negatives[user] if scores[j] >= target_score)
    # Seeded per user: the same draw whatever the batching or the users evaluated.
    subset = RankingEvaluator(dataset, "test", EvalConfig(protocol="sampled", num_sampled=25), 8, users=[5, 2])
    drawn = {int(subset.users[r]): n for b in subset._batches for r, n in zip(b.rows, b.negatives.tolist())}
    assert drawn == {5: negatives[5], 2: negatives[2]}


def test_sampled_protocol_needs_enough_unseen_items():
    dataset = make_dataset(TINY, 6)
    with pytest.raises(ValueError, match="num_sampled"):
        RankingEvaluator(dataset, "valid", EvalConfig(protocol="sampled", num_sampled=3), 50)


def test_model_mode_is_restored_and_bad_split_rejected():
    dataset = make_dataset(TINY, 6)
    model = FakeScoringBackbone(scores_after(6, TINY_SCORES))
    model.train()
    evaluate(model, dataset, "test", EvalConfig(), 50, "cpu")
    assert model.training
    with pytest.raises(ValueError, match="split"):
        RankingEvaluator(dataset, "train", EvalConfig(), 50)


class FakeBiasedBackbone(FakeScoringBackbone):
    """Overrides score_all with an output bias: the evaluator must rank with it."""

    def score_all(self, seq: torch.Tensor) -> torch.Tensor:
        bias = torch.zeros(self.by_item.shape[0])
        bias[6] = 1000.0
        return super().score_all(seq) + bias


def test_an_overridden_score_all_is_respected():
    dataset = make_dataset(TINY, 6)
    biased = FakeBiasedBackbone(scores_after(6, TINY_SCORES))
    # u0 valid without exclusion: items 1, 2, 3, 5 and now 6 beat the target.
    assert RankingEvaluator(dataset, "valid", EvalConfig(exclude_history=False), 50).ranks(biased, "cpu")[0] == 5


def test_recommend_excludes_the_history():
    dataset = make_dataset(TINY, 6)
    model = FakeScoringBackbone(scores_after(6, TINY_SCORES))
    # u0 with the test history [1, 2, 3, 4]: after item 4 the order is 4 (10), 1 (5), 2 (3), 5 (2), 3 (1), 6 (0).
    recs = recommend(model, dataset, user=0, k=3)
    assert [r.item for r in recs] == [5, 6]  # only two unseen items exist
    assert [r.rank for r in recs] == [1, 2] and not any(r.in_history for r in recs)
    assert recs[0].item_id == "i5" and recs[0].title == "Item 5" and recs[0].score == 2.0
    recs = recommend(model, dataset, user=0, k=3, exclude_history=False)
    assert [(r.item, r.in_history) for r in recs] == [(4, True), (1, True), (2, True)]
    # "valid" history [1, 2, 3]: after item 3, unseen 5 (6) beats unseen 4 (5). "all" [1..5]: only 6 is unseen.
    assert [r.item for r in recommend(model, dataset, user=0, k=2, history="valid")] == [5, 4]
    assert [r.item for r in recommend(model, dataset, user=0, k=3, history="all")] == [6]


def test_half_precision_scores_count_exactly():
    # bfloat16 holds integers exactly only up to 256: a count of 301 tied items must not round to 300 or 302.
    dataset = make_dataset([[1, 2, 3, 4], [5, 6, 7, 8]], 301)
    constant = FakeScoringBackbone(torch.zeros(302, 302)).to(torch.bfloat16)
    ranks = RankingEvaluator(dataset, "test", EvalConfig(exclude_history=False), 50).ranks(constant, "cpu")
    assert ranks.tolist() == [300, 300]
