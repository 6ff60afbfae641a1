"""HR/NDCG/MRR@K against values computed by hand, and the popularity head/tail split."""

import math

import numpy as np
import pytest

from engine.evaluation.metrics import popularity_head_mask, ranking_metrics


def test_metrics_match_hand_computed_values():
    # ranks 0, 1, 4, 9, 10 (0-based); 1/log2(rank + 2) = 1, 0.63093, 0.38685, 0.28906, 0.27894
    m = ranking_metrics(np.array([0, 1, 4, 9, 10]), ks=[1, 5, 10])
    assert m["HR@1"] == pytest.approx(1 / 5)
    assert m["HR@5"] == pytest.approx(3 / 5)
    assert m["HR@10"] == pytest.approx(4 / 5)  # rank 10 is outside the top 10
    assert m["NDCG@1"] == pytest.approx(1 / 5)
    assert m["NDCG@5"] == pytest.approx((1 + 0.6309297536 + 0.3868528072) / 5)
    assert m["NDCG@10"] == pytest.approx((1 + 0.6309297536 + 0.3868528072 + 0.2890648264) / 5)
    assert m["MRR@1"] == pytest.approx(1 / 5)
    assert m["MRR@5"] == pytest.approx((1 + 1 / 2 + 1 / 5) / 5)
    assert m["MRR@10"] == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 10) / 5)
    assert set(m) == {f"{n}@{k}" for n in ("HR", "NDCG", "MRR") for k in (1, 5, 10)}


@pytest.mark.parametrize(
    "rank, k, hr, ndcg, mrr",
    [
        (0, 5, 1.0, 1.0, 1.0),
        (2, 5, 1.0, 0.5, 1 / 3),  # 1 / log2(4) = 0.5
        (4, 5, 1.0, 1 / math.log2(6), 1 / 5),  # last position inside the top 5
        (5, 5, 0.0, 0.0, 0.0),  # rank == K: just outside
        (12100, 20, 0.0, 0.0, 0.0),
        (6, 20, 1.0, 1 / 3, 1 / 7),  # 1 / log2(8) = 1/3
    ],
)
def test_single_rank(rank, k, hr, ndcg, mrr):
    m = ranking_metrics([rank], ks=[k])
    assert (m[f"HR@{k}"], m[f"NDCG@{k}"], m[f"MRR@{k}"]) == pytest.approx((hr, ndcg, mrr))


def test_suffix_and_empty_ranks():
    m = ranking_metrics(np.array([], dtype=np.int64), ks=[10], suffix="/tail")
    assert m == {"HR@10/tail": 0.0, "NDCG@10/tail": 0.0, "MRR@10/tail": 0.0}


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="ranks"):
        ranking_metrics([-1], ks=[5])
    with pytest.raises(ValueError, match="eval.ks"):
        ranking_metrics([0], ks=[0])


def test_head_is_the_most_popular_fifth():
    popularity = np.array([1000, 5, 1, 9, 1, 3])  # index 0 is padding: never head, whatever its count
    assert popularity_head_mask(popularity).tolist() == [False, False, False, True, False, False]
    assert popularity_head_mask(popularity, 0.4).tolist() == [False, True, False, True, False, False]


def test_head_size_is_exact_and_ties_go_to_the_lower_index():
    popularity = np.array([0] + [7] * 15)
    head = popularity_head_mask(popularity)
    assert head.sum() == 3  # ceil(0.2 * 15), not 4 through floating-point error
    assert np.flatnonzero(head).tolist() == [1, 2, 3]
