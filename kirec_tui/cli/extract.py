"""`kirec extract`: LLM attribute extraction for a dataset's items, cached and resumable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from kirec_tui.options import flags_of, option
from kirec_tui.cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, err_console, friendly_errors, print_status
from kirec_tui.cli.workspace import WorkspaceOption


def extract_command(
    dataset: option("dataset") = None,
    prompt: option("prompt") = None,
    prompts_dir: option("prompts_dir") = None,
    extractor: option("extractor") = None,
    llm_model: option("llm_model") = None,
    llm_url: option("llm_url") = None,
    llm_concurrency: option("llm_concurrency") = None,
    data_root: option("data_root") = None,
    workspace: WorkspaceOption = None,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N items (a quick look).")] = None,
    retry_failed: Annotated[bool, typer.Option(help="Ask the LLM again for items that failed before.")] = False,
    export: Annotated[
        Optional[Path], typer.Option(help="Also write the answers to this JSONL file (shipping format).")
    ] = None,
) -> None:
    """Extract item attributes with an LLM. Answers are cached as they arrive: stop any time, run again to continue."""
    from engine.config import load_config
    from engine.services import datasets, extraction
    from engine.workspace import Workspace

    flags = flags_of(
        locals(),
        ("dataset", "data_root", "prompt", "prompts_dir", "extractor", "llm_model", "llm_url", "llm_concurrency"),
    )
    flags["workspace"] = workspace
    cwd = Path.cwd()
    with friendly_errors():
        cfg = load_config(
            env=os.environ, flags=flags, keys=("data", "knowledge", "train.num_threads", "workspace")
        )  # what it reads
        paths = Workspace.of(cfg)
        ds = datasets.load(cfg.data, cwd=cwd, cache_dir=paths.dataset_cache)
        chosen = extraction.prompt_for(cfg, ds)
        backend = extraction.backend(cfg)
        items = list(range(1, min(limit, ds.num_items) + 1)) if limit else None
        progress = Progress(
            TextColumn("[bold]extracting"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        )
        task = progress.add_task("extract", total=len(items) if items else ds.num_items, rate="")
        with extraction.session(chosen, backend, paths.extraction_cache) as session, progress:
            try:
                report = session.extract(
                    ds,
                    item_indices=items,
                    retry_failed=retry_failed,
                    on_event=print_status,
                    on_progress=lambda p: progress.update(
                        task, completed=p.done, total=p.total, rate=f"{p.items_per_second:.2f} items/s"
                    ),
                )
            except KeyboardInterrupt:
                err_console.print("interrupted: every answer so far is cached; run the same command to continue")
                raise typer.Exit(EXIT_INTERRUPTED) from None
            session.quality(ds, items).emit(print_status)  # distinct answers, title copies, warnings
            if export:
                count = session.export(ds, export)
                err_console.print(f"wrote {count} answers to {export}")
    typer.echo(
        f"{ds.name} / {chosen.name} ({chosen.content_hash[:12]}): {report.extracted} extracted, "
        f"{report.from_cache} cached, {report.failed} failed, {report.items_per_second:.2f} items/s"
    )
    for failure in report.failures[:5]:
        err_console.print(f"[yellow]failed[/] {failure.item_id}: {failure.error} (raw: {failure.raw_output[:80]!r})")
    if report.failed and not report.extracted and not report.from_cache:
        raise typer.Exit(EXIT_FAILED)
