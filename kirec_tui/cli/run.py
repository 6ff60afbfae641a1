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

from kirec_tui.cli.process_end import end_without_finalization
from kirec_tui.cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, err_console, fail, friendly_errors
from kirec_tui.options import flags_of, option

# the declared settings (kirec_tui.options) that `kirec run` has a flag for
RUN_FLAGS = (
    "dataset",
    "backbone",
    "method",
    "fusion",
    "reduction",
    "prompt",
    "prompts_dir",
    "epochs",
    "seed",
    "loss",
    "batch_size",
    "lr",
    "hidden_size",
    "max_len",
    "patience",
    "device",
    "db",
    "data_root",
    "name",
    "exclude_history",
    "protocol",
    "workspace",
)


@contextlib.contextmanager
def stop_on_first_ctrl_c(quiet: bool = False) -> Iterator[threading.Event]:
    """The first Ctrl-C (or SIGTERM, as a service manager or `kill` sends) asks the pipeline to stop at its next
    step: the run ends INTERRUPTED, its rows intact, and can be resumed. A second one interrupts at once.
    A KeyboardInterrupt in the middle of a store write is what this avoids. `quiet`: say nothing (a DDP rank
    other than 0; torchrun hands the signal to every rank, and rank 0 speaks for them)."""
    stop = threading.Event()

    def on_signal(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        if not quiet:
            what = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            err_console.print(f"[yellow]{what}: stopping after this step (again to abort at once)[/]")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
    config: Annotated[
        Optional[Path], typer.Option("--config", "-c", help="TOML config file (flags override it).")
    ] = None,
    dataset: option("dataset") = None,
    backbone: option("backbone") = None,
    method: option("method") = None,
    fusion: option("fusion") = None,
    reduction: option("reduction") = None,
    prompt: option("prompt") = None,
    prompts_dir: option("prompts_dir") = None,
    epochs: option("epochs") = None,
    seed: option("seed") = None,
    loss: option("loss") = None,
    batch_size: option("batch_size") = None,
    lr: option("lr") = None,
    hidden_size: option("hidden_size") = None,
    max_len: option("max_len") = None,
    patience: option("patience") = None,
    device: option("device") = None,
    db: option("db") = None,
    data_root: option("data_root") = None,
    name: option("name") = None,
    exclude_history: option("exclude_history") = None,
    protocol: option("protocol") = None,
    workspace: option("workspace") = None,
    set_: Annotated[list[str], typer.Option("--set", help="Any config field: SECTION.FIELD=VALUE (repeatable).")] = [],
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")] = False,
    resume: Annotated[
        Optional[int],
        typer.Option("--resume", metavar="RUN_ID", help="Continue an INTERRUPTED run from its last epoch."),
    ] = None,
    nproc: Annotated[
        int,
        typer.Option(
            "--nproc",
            min=1,
            help="Train with N processes (PyTorch DDP under torchrun; gloo on the CPU, one GPU each "
            "on CUDA). train.batch_size stays the global batch.",
        ),
    ] = 1,
    baseline: Annotated[
        Optional[bool],
        typer.Option(
            "--baseline/--no-baseline",
            show_default=False,
            help="Compare with the plain ID model (knowledge.method=id, same data, backbone and seed): a finished one "
            "from --db, else trained after this run. Default: on unless the method is id; off with --nproc.",
        ),
    ] = None,
) -> None:
    """Train and evaluate a sequential recommender; with no arguments, the embedded default."""
    from engine.config import load_config
    from engine.services import experiments
    from engine.workspace import Workspace
    from kirec_tui.progress import ConsoleProgress

    flags = flags_of(locals(), RUN_FLAGS)
    # --set sits below the dedicated flags (a flag the user typed wins); kept apart so a message names what was typed.
    overrides = parse_set_options(set_)
    if resume is not None:
        typed = {**overrides, **{k: v for k, v in flags.items() if v is not None}}
        extra = sorted(k for k in typed if k not in ("db", "workspace")) + (["--config"] if config is not None else [])
        if extra:
            raise fail(f"--resume {resume} continues the run with its stored config; drop {', '.join(extra)}", 2)
    with friendly_errors():
        cfg = load_config(config, env=os.environ, flags=flags, overrides=overrides)
        paths = Workspace.of(cfg)  # runs.db, checkpoints and caches, inside the workspace
        distributed = experiments.distributed_context(os.environ)  # torchrun's variables; one process without them
        if baseline and (nproc > 1 or distributed.enabled):
            raise fail("--baseline trains in one process; train the ID model with --method id, or drop --nproc", 2)
        if nproc > 1:  # a bad config fails here, once, before any process starts
            if resume is not None:  # the run's stored settings decide, and its device is the ranks' to join on
                train = experiments.stored_train_settings(paths.db, resume)
                device_setting, batch = str(train.get("device", "auto")), int(train.get("batch_size", nproc))
                experiments.check_launch(device_setting, nproc, batch)
                raise typer.Exit(
                    launch_ranks(
                        nproc,
                        None,
                        {"db": str(paths.db), "workspace": str(paths.root)},
                        as_json,
                        resume=resume,
                        env={"KIREC_TRAIN__DEVICE": device_setting},
                    )
                )
            experiments.check_launch(cfg.train.device, nproc, cfg.train.batch_size)
            typed = {k: v for k, v in flags.items() if v is not None}
            raise typer.Exit(launch_ranks(nproc, config, {**overrides, **typed}, as_json))
        if resume is not None and distributed.is_main:  # the other ranks never open the database
            # for the progress bar; the run brings its config
            cfg.train.epochs = int(experiments.stored_train_settings(paths.db, resume).get("epochs", 1))
        # The run's own config (a resumed run's stored one) decides whether an ID baseline stands beside it.
        compared = (
            None
            if distributed.enabled
            else (experiments.stored_config(paths.db, resume) if resume is not None else cfg)
        )
        if compared is not None and not (experiments.wants_baseline(compared) if baseline is None else baseline):
            compared = None
        if compared is not None and not experiments.wants_baseline(compared):
            raise fail("--baseline: this run is the plain ID model (knowledge.method=id, no side fields) itself", 2)
        beside = None
        progress_display = (
            ConsoleProgress(err_console, cfg.train.epochs) if distributed.is_main else contextlib.nullcontext(_ignore)
        )  # ranks other than 0 print nothing
        with progress_display as progress, stop_on_first_ctrl_c(quiet=not distributed.is_main) as stop:
            try:
                if resume is not None:
                    result = experiments.resume(
                        paths.db,
                        resume,
                        on_event=progress,
                        should_stop=stop.is_set,
                        distributed=distributed,
                        join_device=cfg.train.device,
                        workspace=paths.root,
                    )
                else:
                    result = experiments.run(cfg, on_event=progress, should_stop=stop.is_set, distributed=distributed)
            except KeyboardInterrupt:
                if as_json and distributed.is_main:
                    typer.echo(json.dumps({"run_id": None, "status": "INTERRUPTED"}))
                raise typer.Exit(EXIT_INTERRUPTED) from None
            finally:
                distributed.leave()
                if distributed.enabled:  # gloo's threads outlive the group: see process_end
                    end_without_finalization()
            if compared is not None and result.status == "FINISHED":
                beside = baseline_beside(compared, progress, stop)
    if distributed.is_main:  # rank 0 reports for every rank
        if as_json:
            payload = result.to_json()
            if compared is not None:
                payload["baseline"] = beside.to_json(result.test) if beside is not None else None
            typer.echo(json.dumps(payload, default=str))
        else:
            _print_metrics(result, beside, compared.knowledge.method if compared is not None else None)
    if result.status == "INTERRUPTED" or (beside is not None and beside.status == "INTERRUPTED"):
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.status != "FINISHED":
        raise typer.Exit(EXIT_FAILED)


def baseline_beside(cfg, progress, stop: threading.Event):
    """The ID baseline of the finished run `cfg` (from the store, or trained now). A Ctrl-C while it trains
    keeps the finished run: the baseline reads INTERRUPTED (resumable by its id, or trained by the next run)."""
    from engine.services import experiments

    if stop.is_set():
        return experiments.Baseline(None, "INTERRUPTED", reused=False)
    try:
        return experiments.find_or_train_baseline(cfg, on_event=progress, should_stop=stop.is_set)
    except KeyboardInterrupt:
        return experiments.Baseline(None, "INTERRUPTED", reused=False)


def _ignore(_event) -> None:
    """The event sink of a rank other than 0."""


# torchrun (torch.distributed.run), minus the traceback it prints when a Ctrl-C stops it: exit 130 instead.
_TORCHRUN = """\
import gc
import sys
from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.run import main
try:
    main(sys.argv[1:])
except SignalException:
    sys.exit(130)
finally:
    gc.freeze()  # as kirec's own exit: no final collection over torch's objects
"""


def launch_ranks(
    nproc: int,
    config: Path | None,
    overrides: dict,
    as_json: bool,
    resume: int | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """This command again under torchrun with `nproc` processes on this machine (the same config file and
    overrides, as --set; or --resume RUN_ID with the database, and `env` added), and torchrun's exit status.
    The same as typing

        torchrun --standalone --nproc-per-node N -m kirec_tui.cli run [--config F] [--set K=V ...] [--json]

    torchrun runs in a session of its own, so a Ctrl-C reaches it once, from here: it hands SIGINT to every
    rank, and the ranks stop together after their current step (the run ends INTERRUPTED, exit 130). A second
    Ctrl-C goes to the ranks themselves, which then abort at once, as one process does. SIGTERM counts as a
    Ctrl-C, and torchrun gets SIGINT if this process dies.
    """
    import subprocess
    import sys

    command = [
        sys.executable,
        "-c",
        _TORCHRUN,
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "kirec_tui.cli",
        "run",
    ]
    if config is not None:
        command += ["--config", str(config)]
    for key, value in overrides.items():
        command += ["--set", f"{key}={value}"]
    if resume is not None:
        command += ["--resume", str(resume)]
    if as_json:
        command.append("--json")
    launcher = subprocess.Popen(
        command, start_new_session=True, preexec_fn=_interrupt_when_parent_dies, env={**os.environ, **(env or {})}
    )
    interrupted = threading.Event()

    def forward_sigint(signum, frame):
        if not interrupted.is_set():
            interrupted.set()
            launcher.send_signal(signal.SIGINT)  # torchrun hands it to every rank: stop after this step
            return
        import psutil  # again: straight to the ranks (torchrun's children), a second Ctrl-C each: abort at once

        with contextlib.suppress(psutil.Error):
            for rank in psutil.Process(launcher.pid).children():
                with contextlib.suppress(psutil.Error):
                    rank.send_signal(signal.SIGINT)

    previous = {sig: signal.signal(sig, forward_sigint) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = launcher.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_INTERRUPTED if interrupted.is_set() else code


def _interrupt_when_parent_dies() -> None:
    """In torchrun's process, before it starts (Linux): SIGINT when `kirec run` dies, even by SIGKILL, so the
    ranks stop (INTERRUPTED) instead of training on unseen in their own sessions. Elsewhere nothing."""
    from engine.processes import signal_when_parent_dies

    signal_when_parent_dies(signal.SIGINT)


def _print_metrics(result, beside=None, method: str | None = None) -> None:
    """The run's metrics; with an ID baseline, its test metrics and the relative gain beside them, and one line
    saying which wins on test NDCG@10."""
    from rich.console import Console

    table = Table(title=f"run {result.run_id}: {result.status} (best epoch {result.best_epoch})")
    table.add_column("metric")
    table.add_column("valid", justify="right")
    table.add_column("test", justify="right")
    compare = beside is not None and beside.status == "FINISHED"
    if compare:
        table.add_column(f"id test (run {beside.run_id})", justify="right")
        table.add_column("gain", justify="right")
        gains = beside.gain(result.test)
    keys = [k for k in result.test if "/" not in k and k != "users"]
    for key in keys:
        row = [key, f"{result.valid.get(key, float('nan')):.4f}", f"{result.test[key]:.4f}"]
        if compare:
            row += [f"{beside.test.get(key, float('nan')):.4f}", f"{gains[key]:+.1%}" if key in gains else "—"]
        table.add_row(*row)
    console = Console()
    console.print(table)
    if beside is None:
        return
    if not compare:
        which = f"run {beside.run_id}" if beside.run_id is not None else "run"
        console.print(f"baseline: the ID model's {which} was {beside.status}, so there is no comparison")
        return
    key = "NDCG@10"
    if key in gains:
        where = "already in the database" if beside.reused else "trained now"
        verdict = "wins" if gains[key] > 0 else "does not beat the ID model"
        console.print(
            f"{method} test {key} {result.test[key]:.4f} against {beside.test[key]:.4f} for the plain ID "
            f"model (run {beside.run_id}, {where}): {gains[key]:+.1%}, {method} {verdict} on this seed"
        )
