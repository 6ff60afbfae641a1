"""Full ranks per user (through the evaluator) and the rank-change table between two runs, on hand-computed cases."""

import math

import numpy as np
import pytest

from engine.config import EvalConfig
from engine.evaluation.rank_changes import (
    UserRanks,
    change_buckets,
    change_labels,
    compare_ranks,
    full_ranks,
    history_labels,
)
from tests.unit.test_evaluator import TINY, TINY_SCORES, FakeScoringBackbone, make_dataset, scores_after


def test_full_ranks_are_the_evaluators_ranks_plus_one_under_the_full_protocol_whatever_the_run_used():
    dataset = make_dataset(TINY, 6)
    model = FakeScoringBackbone(scores_after(6, TINY_SCORES))
    # u0 ranks item 5 after [1, 2, 3, 4]: scores 5, 3, 1, 10, 2, 0 for items 1..6. Its history excluded, only item 6
    # is left beside it and scores lower: rank 1. Without the exclusion items 1, 2 and 4 score higher: rank 4.
    # u1 ranks item 6 after [2, 4, 2]: item 6 scores highest: rank 1.
    excluded = full_ranks(model, dataset, EvalConfig(protocol="sampled", num_sampled=2), max_len=50)
    assert excluded.ranks.tolist() == [1, 1]
    kept = full_ranks(model, dataset, EvalConfig(exclude_history=False), max_len=50)
    assert kept.ranks.tolist() == [4, 1]
    assert kept.targets.tolist() == [5, 6] and kept.history_lengths.tolist() == [4, 3]
    assert kept.num_items == 6
    only_u1 = full_ranks(model, dataset, EvalConfig(exclude_history=False), max_len=50, users=[1])
    assert only_u1.users.tolist() == [1] and only_u1.ranks.tolist() == [1]


def test_change_labels_and_buckets():
    assert change_labels((1, 10, 100)) == ("+100+", "+10–99", "+1–9", "same", "−1–9", "−10–99", "−100+")
    changes = np.array([0, 1, 9, 10, 99, 100, 5000, -1, -10, -100])
    assert change_buckets(changes, (1, 10, 100)).tolist() == [3, 2, 2, 1, 1, 0, 0, 4, 5, 6]
    assert history_labels((10, 20)) == ("<10", "10–19", "20+")
    with pytest.raises(ValueError):
        change_buckets(changes, (2, 10))


def ndcg(ranks) -> float:
    return sum(1 / math.log2(r + 1) for r in ranks if r <= 10) / len(ranks)


def test_compare_ranks_hand_computed():
    a_ranks = [1, 5, 20, 100, 3, 50, 7, 2]
    b_ranks = [1, 2, 150, 10, 3, 40, 8, 1]  # changes A - B: 0, +3, -130, +90, 0, +10, -1, +1
    users = np.arange(8)
    targets = np.arange(8) + 1
    head = np.array([True, True, True, False, False, False, False, False])
    lengths = np.array([5, 12, 15, 30, 60, 250, 9, 19])

    def ranks(values):
        return UserRanks(users, targets, np.array(values), head, lengths, num_items=500)

    table = compare_ranks(ranks(a_ranks), ranks(b_ranks), run_a=3, run_b=5, history_edges=(10, 20, 50, 100, 200))
    assert (table.run_a, table.run_b, table.users, table.num_items) == (3, 5, 8, 500)
    groups = {g.name: g for g in table.groups}
    # "history 100–199" has no user and is left out
    assert list(groups) == [
        "all users",
        "head items",
        "tail items",
        "history <10",
        "history 10–19",
        "history 20–49",
        "history 50–99",
        "history 200+",
    ]
    everyone = groups["all users"]
    assert (everyone.users, everyone.gained, everyone.same, everyone.lost) == (8, 4, 2, 2)
    assert everyone.buckets == {
        "+100+": 0,
        "+10–99": 2,
        "+1–9": 2,
        "same": 2,
        "−1–9": 1,
        "−10–99": 0,
        "−100+": 1,
    }
    assert everyone.median_change == 0.5  # sorted: -130 -1 0 0 | 1 3 10 90
    assert everyone.median_rank_a == 6.0 and everyone.median_rank_b == 5.5
    assert everyone.ndcg_a == pytest.approx(ndcg(a_ranks)) and everyone.ndcg_b == pytest.approx(ndcg(b_ranks))
    assert everyone.ndcg_gain == pytest.approx(ndcg(b_ranks) / ndcg(a_ranks) - 1)
    head_group = groups["head items"]
    assert (head_group.users, head_group.gained, head_group.same, head_group.lost) == (3, 1, 1, 1)
    assert head_group.buckets["−100+"] == 1 and head_group.buckets["+1–9"] == 1
    assert (groups["tail items"].gained, groups["tail items"].lost) == (3, 1)
    short = groups["history 10–19"]  # users 1, 2, 7: +3, -130, +1
    assert (short.users, short.gained, short.lost) == (3, 2, 1)
    assert groups["history 200+"].buckets["+10–99"] == 1


def test_compare_ranks_refuses_different_users_or_targets():
    def ranks(targets):
        n = len(targets)
        return UserRanks(np.arange(n), np.array(targets), np.ones(n, int), np.zeros(n, bool), np.ones(n, int), 9)

    with pytest.raises(ValueError, match="different data"):
        compare_ranks(ranks([1, 2]), ranks([1, 3]))
