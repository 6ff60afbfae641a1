"""The results table of a bench: mean ± std over seeds, gain and a paired Wilcoxon test against the baseline of
the same backbone and dataset, parameters, timings, head/tail items; written as Markdown and JSON.

Full ranking is the table. Runs evaluated with sampled negatives (eval.protocol = "sampled") are comparable only
with papers that used that protocol, so they go in a separate, labelled table and are compared only with a
baseline evaluated the same way.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from engine.bench.artifacts import SECONDS_TO_BEST_TAG, TRAIN_SECONDS_TAG, load_test_ranks, per_user_metric
from engine.bench.identity import ranks_path
from engine.bench.runner import BenchOutcome
from engine.bench.stats import MeanStd, PairedTest, mean_std, paired_wilcoxon, relative_gain

METRICS = ("HR@10", "NDCG@10", "HR@20", "NDCG@20")
GROUP_METRICS = ("HR@10", "NDCG@10")  # reported for head and tail items
TEST_METRIC = ("NDCG", 10)  # the per-user metric of the significance test (and the gain column)
FULL, SAMPLED = "full", "sampled"


@dataclass
class Row:
    protocol: str  # full | sampled
    protocol_label: str
    dataset: str
    backbone: str
    method: str
    run_ids: list[int]
    seeds: list[int]
    setting: dict[str, Any]
    metrics: dict[str, MeanStd | None]
    valid: dict[str, MeanStd | None]  # at each run's best epoch: what early stopping and the [tune] grid choose by
    head: dict[str, MeanStd | None]
    tail: dict[str, MeanStd | None]
    parameters: int | None
    train_seconds: MeanStd | None
    seconds_to_best: MeanStd | None
    best_epochs: list[int | None]  # per seed
    epochs_run: list[int]  # per seed: epochs trained (equal to best_epoch: still improving when it stopped)
    users: np.ndarray = field(repr=False)
    per_user: np.ndarray = field(repr=False)  # per-user NDCG@10 averaged over seeds, aligned with `users`
    is_baseline: bool = False
    gain: dict[str, float | None] = field(default_factory=dict)
    test: PairedTest | None = None

    def to_json(self) -> dict[str, Any]:
        def ms(value: MeanStd | None) -> Any:
            return None if value is None else value.to_json()

        return {
            "protocol": self.protocol,
            "protocol_label": self.protocol_label,
            "dataset": self.dataset,
            "backbone": self.backbone,
            "method": self.method,
            "baseline": self.is_baseline,
            "seeds": self.seeds,
            "run_ids": self.run_ids,
            "setting": self.setting,
            "test": {k: ms(v) for k, v in self.metrics.items()},
            "valid": {k: ms(v) for k, v in self.valid.items()},
            "head": {k: ms(v) for k, v in self.head.items()},
            "tail": {k: ms(v) for k, v in self.tail.items()},
            "gain": self.gain,
            "wilcoxon": None
            if self.test is None
            else {
                "metric": f"{TEST_METRIC[0]}@{TEST_METRIC[1]} per user, averaged over seeds",
                "p_value": self.test.p_value,
                "statistic": self.test.statistic,
                "users": self.test.n_users,
                "users_differing": self.test.n_nonzero,
            },
            "parameters": self.parameters,
            "train_seconds": ms(self.train_seconds),
            "train_seconds_to_best": ms(self.seconds_to_best),
            "best_epochs": self.best_epochs,
            "epochs_run": self.epochs_run,
        }


def build_rows(outcome: BenchOutcome, store: Any) -> list[Row]:
    """One row per (protocol, dataset, backbone, method), from the runs at each group's chosen setting."""
    spec = outcome.spec
    rows = []
    for group in spec.groups():
        chosen = outcome.chosen.get(group)
        runs = [r for r in outcome.runs if r.cell.group == group and r.cell.setting == chosen]
        if runs:
            details = [store.get_run(r.run_id) for r in runs]
            epochs = [_epochs_trained(store, r.run_id) for r in runs]
            rows.append(_row(runs, details, epochs, group[2] == spec.baseline))
    for row in rows:
        if row.is_baseline:
            continue
        base = next(
            (
                b
                for b in rows
                if b.is_baseline and (b.protocol, b.dataset, b.backbone) == (row.protocol, row.dataset, row.backbone)
            ),
            None,
        )
        if base is None:
            continue
        row.gain = {
            k: (relative_gain(v.mean, base.metrics[k].mean) if v is not None and base.metrics.get(k) else None)
            for k, v in row.metrics.items()
        }
        common, mine, theirs = np.intersect1d(row.users, base.users, return_indices=True)
        row.test = paired_wilcoxon(row.per_user[mine], base.per_user[theirs]) if common.size else None
    return rows


def _epochs_trained(store: Any, run_id: int) -> int:
    """The last epoch a run trained: its training loss is logged every epoch, its validation only every
    eval.every epochs (counting validations said 10 for a 30-epoch run validated every 3)."""
    losses = store.metric_history(run_id, "train/loss")
    return max((p.step for p in losses), default=0)


def _row(runs: list[Any], details: list[Any], epochs_run: list[int], is_baseline: bool) -> Row:
    first = details[0]
    protocol = first.params.get("eval.protocol", FULL)
    per_user, users = _per_user_average(details)

    def stat(key: str, split: str = "test") -> MeanStd | None:
        values = [(d.test_metrics if split == "test" else d.valid_metrics).get(key) for d in details]
        return None if any(v is None or not math.isfinite(v) for v in values) else mean_std(values)

    def tag_stat(tag: str) -> MeanStd | None:
        values = [d.tags.get(tag) for d in details]
        return None if any(v is None for v in values) else mean_std([float(v) for v in values])

    parameters = first.params.get("model.parameters")
    return Row(
        protocol=protocol,
        protocol_label=first.params.get("eval.protocol_label", protocol),
        dataset=first.summary.dataset,
        backbone=first.summary.backbone,
        method=runs[0].cell.method,
        run_ids=[d.id for d in details],
        seeds=[r.cell.seed for r in runs],
        setting=dict(runs[0].cell.setting),
        metrics={m: stat(f"test/{m}") for m in METRICS},
        valid={m: stat(f"valid/{m}", "valid") for m in METRICS},
        head={m: stat(f"test/{m}/head") for m in GROUP_METRICS},
        tail={m: stat(f"test/{m}/tail") for m in GROUP_METRICS},
        parameters=None if parameters is None else int(parameters),
        train_seconds=tag_stat(TRAIN_SECONDS_TAG),
        seconds_to_best=tag_stat(SECONDS_TO_BEST_TAG),
        best_epochs=[None if "best_epoch" not in d.tags else int(d.tags["best_epoch"]) for d in details],
        epochs_run=epochs_run,
        users=users,
        per_user=per_user,
        is_baseline=is_baseline,
    )


def _per_user_average(details: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per-user NDCG@10 averaged over the runs, over the users every run evaluated."""
    users: np.ndarray | None = None
    values: list[dict[int, float]] = []
    for detail in details:
        path = ranks_path(detail)
        if path is None:
            raise FileNotFoundError(f"run {detail.id}: its per-user test ranks file is missing")
        ranks = load_test_ranks(path)
        values.append(dict(zip(ranks.users.tolist(), per_user_metric(ranks.ranks, *TEST_METRIC).tolist())))
        users = ranks.users if users is None else np.intersect1d(users, ranks.users)
    users = np.sort(np.asarray(users, dtype=np.int64))
    table = np.array([[v[int(u)] for u in users] for v in values], dtype=np.float64)
    return table.mean(axis=0), users


# -- writers ----------------------------------------------------------------------------------------------------


def write_results(
    outcome: BenchOutcome,
    rows: list[Row],
    out: str | Path,
    command: str,
    db: str | Path,
    code_versions: Iterable[str],
    budget: str = "",
) -> tuple[Path, Path]:
    """`<out>.md` and `<out>.json` (out is a path without suffix, e.g. docs/results/ml-latest-small)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    versions = sorted(set(code_versions))
    document = {
        "bench": outcome.spec.name,
        "command": command,
        "generated_at": generated,
        "database": str(db),
        "code_versions": versions,
        "budget": budget,
        "baseline": outcome.spec.baseline,
        "complete": outcome.complete,
        "rows": [r.to_json() for r in rows],
        "tuning": [
            {"dataset": g[0], "backbone": g[1], "method": g[2], "points": p}
            for g, p in outcome.tuning.items()
            if len(p) > 1
        ],
    }
    md_path, json_path = out.with_suffix(".md"), out.with_suffix(".json")
    json_path.write_text(json.dumps(document, indent=2, default=_json_default) + "\n")
    md_path.write_text(markdown(outcome, rows, command, generated, db, versions, budget))
    return md_path, json_path


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)


def markdown(
    outcome: BenchOutcome,
    rows: list[Row],
    command: str,
    generated: str,
    db: str | Path,
    versions: list[str],
    budget: str = "",
) -> str:
    spec = outcome.spec
    lines = [
        f"# Bench: {spec.name}",
        "",
        f"Made by `{command}` on {generated}, from the runs in `{db}` (code {', '.join(versions) or 'unknown'}).",
        "",
        f"Test split, mean ± std over seeds. Gain: relative to `{spec.baseline}` of the same backbone and dataset; "
        "p: two-sided Wilcoxon signed-rank test over users of per-user NDCG@10 (each user's mean over seeds) "
        "against that baseline. Head: targets among the 20% most popular items; tail: the rest. "
        "Train s: optimisation seconds (validation excluded); to best: those seconds up to the best epoch. "
        "Epochs: best / run, per seed; a best epoch equal to the last one means the run was still improving "
        "when its budget or epoch limit stopped it.",
    ]
    if budget:
        lines += ["", f"Budget per cell: {budget}."]
    if outcome.table_only:
        lines += [
            "",
            "`--table-only`: recomputed from runs already in the store (the same command without it trains "
            "them); the code versions above are the runs'.",
        ]
    if outcome.missing:
        lines += [
            "",
            f"**Incomplete:** {len(outcome.missing)} cells have no finished run: "
            + "; ".join(c.label() for c in outcome.missing)
            + ".",
        ]
    elif not outcome.complete:
        lines += ["", "**Incomplete:** the bench stopped before every cell finished; rows cover the finished runs."]
    full = [r for r in rows if r.protocol != SAMPLED]
    sampled = [r for r in rows if r.protocol == SAMPLED]
    if full:
        lines += ["", f"## Full ranking ({full[0].protocol_label})", "", *_table(full)]
    if sampled:
        lines += [
            "",
            f"## Sampled negatives ({sampled[0].protocol_label}): for comparison with papers only",
            "",
            "These numbers are not comparable with the full-ranking table (about tenfold higher, and they can "
            "order models differently: Krichene & Rendle, KDD 2020).",
            "",
            *_table(sampled),
        ]
    tuned = [(g, p) for g, p in outcome.tuning.items() if len(p) > 1]
    if tuned:
        lines += [
            "",
            "## Tuning (first seed, validation NDCG@10)",
            "",
            "| dataset | backbone | method | setting | valid NDCG@10 | run |",
            "|---|---|---|---|---:|---:|",
        ]
        for (dataset, backbone, method), points in tuned:
            chosen = dict(outcome.chosen[(dataset, backbone, method)])
            for p in points:
                mark = " **(chosen)**" if p["setting"] == chosen else ""
                lines.append(
                    f"| {dataset} | {backbone} | {method} | {_setting(p['setting'])}{mark} | "
                    f"{p['valid/NDCG@10']:.4f} | {p['run_id']} |"
                )
    return "\n".join(lines) + "\n"


def _table(rows: list[Row]) -> list[str]:
    tuned = any(r.setting for r in rows)
    header = [
        "dataset",
        "backbone",
        "method",
        "seeds",
        *METRICS,
        "gain NDCG@10",
        "p",
        "NDCG@10 head",
        "NDCG@10 tail",
        "params",
        "train s",
        "to best s",
        "epochs",
        *(["setting"] if tuned else []),
        "runs",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|"]
    for r in rows:
        gain = r.gain.get("NDCG@10")
        cells = [
            r.dataset,
            r.backbone,
            f"**{r.method}** (baseline)" if r.is_baseline else r.method,
            str(len(r.seeds)),
            *(_ms(r.metrics[m]) for m in METRICS),
            "—" if gain is None else f"{gain * 100:+.1f}%",
            "—" if r.test is None else _p(r.test.p_value),
            _ms(r.head["NDCG@10"]),
            _ms(r.tail["NDCG@10"]),
            "—" if r.parameters is None else f"{r.parameters:,}",
            _ms(r.train_seconds, 1),
            _ms(r.seconds_to_best, 1),
            " ".join(f"{'?' if b is None else b}/{n}" for b, n in zip(r.best_epochs, r.epochs_run)),
            *([_setting(r.setting)] if tuned else []),
            ", ".join(map(str, r.run_ids)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _ms(value: MeanStd | None, digits: int = 4) -> str:
    if value is None:
        return "—"
    return f"{value.mean:.{digits}f} ± {value.std:.{digits}f}"


def describe_budget(configs: list[Any]) -> str:
    """The training limits the cells ran under (RunConfigs): "train.max_train_seconds = 60, train.epochs = 200";
    "" when no cell ran (a bench stopped before its first cell finished has no budget to show)."""
    if not configs:
        return ""
    parts = []
    for key, values in (
        ("train.max_train_seconds", {c.train.max_train_seconds for c in configs}),
        ("train.epochs", {c.train.epochs for c in configs}),
        ("train.patience", {c.train.patience for c in configs}),
    ):
        shown = sorted(("none" if v is None else f"{v:g}") for v in values)
        parts.append(f"{key} = {' / '.join(shown)}")
    return ", ".join(parts)


def _p(p: float) -> str:
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def _setting(setting: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in setting.items()) or "—"
