"""`kirec run`: train and evaluate one configuration headless (the embedded default with no arguments)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.table import Table

from engine.choices import BACKBONE_CHOICES, FUSION_CHOICES, METHOD_CHOICES, REDUCTION_CHOICES
from kirec_tui.cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, err_console, fail, friendly_errors


@contextlib.contextmanager
def stop_on_first_ctrl_c() -> Iterator[threading.Event]:
    """The first Ctrl-C asks the pipeline to stop at its next step (the run ends INTERRUPTED, its rows intact);
    a second one interrupts at once. A KeyboardInterrupt in the middle of a store write is what this avoids."""
    stop = threading.Event()

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        err_console.print("[yellow]stopping after this step (Ctrl-C again to abort at once)[/]")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def parse_set_options(pairs: list[str]) -> dict[str, str]:
    """`--set train.lr=0.002` pairs for any config field without a dedicated flag."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise fail(f"--set {pair!r}: expected SECTION.FIELD=VALUE", 2)
        values[key.strip()] = value.strip()
    return values


def run_command(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML config file (flags override it).")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset name or folder.")] = None,
    backbone: Annotated[Optional[str], typer.Option(help=" | ".join(BACKBONE_CHOICES))] = None,
    method: Annotated[Optional[str], typer.Option(help=" | ".join(METHOD_CHOICES))] = None,
    fusion: Annotated[Optional[str], typer.Option(help=" | ".join(FUSION_CHOICES) + " (method kirec)")] = None,
    reduction: Annotated[Optional[str], typer.Option(help=" | ".join(REDUCTION_CHOICES))] = None,
    prompt: Annotated[Optional[str], typer.Option(help="Extraction prompt file or name under prompts/.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Maximum training epochs.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    loss: Annotated[Optional[str], typer.Option(help="ce | bce | sampled-softmax")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Training batch size.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate.")] = None,
    hidden_size: Annotated[Optional[int], typer.Option(help="Embedding / hidden size.")] = None,
    max_len: Annotated[Optional[int], typer.Option(help="Maximum sequence length.")] = None,
    patience: Annotated[Optional[int], typer.Option(help="Early-stopping patience in epochs.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto | cpu | cuda | cuda:N")] = None,
    db: Annotated[Optional[str], typer.Option(help="Runs database (default runs.db, or KIREC_DB).")] = None,
    data_root: Annotated[Optional[str], typer.Option(help="Folder holding the datasets (or KIREC_DATA).")] = None,
    name: Annotated[Optional[str], typer.Option(help="A name for the run.")] = None,
    exclude_history: Annotated[
        Optional[bool], typer.Option("--exclude-history/--include-history", help="Rank items already in the history?")
    ] = None,
    protocol: Annotated[Optional[str], typer.Option(help="full (primary) | sampled (1 + 100 negatives)")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="Any config field: SECTION.FIELD=VALUE (repeatable).")] = [],
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")] = False,
) -> None:
    """Train and evaluate a sequential recommender; with no arguments, the embedded default."""
    from engine.config import load_config
    from engine.pipeline import run_experiment
    from kirec_tui.progress import ConsoleProgress

    flags = {
        "data.dataset": dataset,
        "model.backbone": backbone,
        "knowledge.method": method,
        "knowledge.fusion": fusion,
        "knowledge.reduction": reduction,
        "knowledge.prompt": prompt,
        "train.epochs": epochs,
        "train.seed": seed,
        "train.loss": loss,
        "train.batch_size": batch_size,
        "train.lr": lr,
        "model.hidden_size": hidden_size,
        "model.max_len": max_len,
        "train.patience": patience,
        "train.device": device,
        "db": db,
        "data.data_root": data_root,
        "name": name,
        "eval.exclude_history": exclude_history,
        "eval.protocol": protocol,
    }
    # --set sits below the dedicated flags (a flag the user typed wins); kept apart so a message names what was typed.
    overrides = parse_set_options(set_)
    with friendly_errors():
        cfg = load_config(config, env=os.environ, flags=flags, overrides=overrides)
        with ConsoleProgress(err_console, cfg.train.epochs) as progress, stop_on_first_ctrl_c() as stop:
            try:
                result = run_experiment(cfg, on_event=progress, should_stop=stop.is_set)
            except KeyboardInterrupt:
                if as_json:
                    typer.echo(json.dumps({"run_id": None, "status": "INTERRUPTED"}))
                raise typer.Exit(EXIT_INTERRUPTED) from None
    if as_json:
        typer.echo(json.dumps(result.to_json(), default=str))
    else:
        _print_metrics(result)
    if result.status == "INTERRUPTED":
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.status != "FINISHED":
        raise typer.Exit(EXIT_FAILED)


def _print_metrics(result) -> None:
    from rich.console import Console

    table = Table(title=f"run {result.run_id}: {result.status} (best epoch {result.best_epoch})")
    table.add_column("metric")
    table.add_column("valid", justify="right")
    table.add_column("test", justify="right")
    keys = [k for k in result.test if "/" not in k and k != "users"]
    for key in keys:
        table.add_row(key, f"{result.valid.get(key, float('nan')):.4f}", f"{result.test[key]:.4f}")
    Console().print(table)
