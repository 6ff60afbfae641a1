"""Leave-one-out evaluation (full ranking first, sampled only for comparing with papers) and recommendation."""

from engine.evaluation.evaluator import RankingEvaluator, evaluate
from engine.evaluation.metrics import popularity_head_mask, ranking_metrics
from engine.evaluation.recommend import Recommendation, recommend

__all__ = ["RankingEvaluator", "evaluate", "ranking_metrics", "popularity_head_mask", "Recommendation", "recommend"]
