"""`kirec extract`: LLM attribute extraction for a dataset's items, cached and resumable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from kirec_tui.cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, err_console, friendly_errors, print_status
from kirec_tui.cli.workspace import WorkspaceOption


def extract_command(
    dataset: Annotated[Optional[str], typer.Option(help="Dataset name or folder.")] = None,
    prompt: Annotated[Optional[str], typer.Option(help="Prompt file or name under prompts/ (default: the dataset's).")] = None,
    extractor: Annotated[Optional[str], typer.Option(help="llama-cpp | transformers | openai")] = None,
    llm_model: Annotated[Optional[str], typer.Option(help="GGUF path, model folder or server model name.")] = None,
    llm_url: Annotated[Optional[str], typer.Option(help="OpenAI-compatible server base URL.")] = None,
    llm_concurrency: Annotated[Optional[int], typer.Option(help="Requests in flight at once to --llm-url's server.")] = None,
    data_root: Annotated[Optional[str], typer.Option("--data-root")] = None,
    workspace: WorkspaceOption = None,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N items (a quick look).")] = None,
    retry_failed: Annotated[bool, typer.Option(help="Ask the LLM again for items that failed before.")] = False,
    export: Annotated[Optional[Path], typer.Option(help="Also write the answers to this JSONL file (shipping format).")] = None,
) -> None:
    """Extract item attributes with an LLM. Answers are cached as they arrive: stop any time, run again to continue."""
    from engine.config import load_config
    from engine.data.preprocess import load_dataset
    from engine.extraction import ExtractionCache, create_backend, extract_items
    from engine.extraction.shipped import export_extractions, import_shipped_extractions
    from engine.knowledge import resolve_prompt
    from engine.workspace import Workspace

    flags = {"data.dataset": dataset, "data.data_root": data_root, "knowledge.prompt": prompt,
             "knowledge.extractor": extractor, "knowledge.llm_model": llm_model, "knowledge.llm_url": llm_url,
             "knowledge.llm_concurrency": llm_concurrency, "workspace": workspace}
    cwd = Path.cwd()
    with friendly_errors():
        cfg = load_config(env=os.environ, flags=flags,
                          keys=("data", "knowledge", "train.num_threads", "workspace"))  # what it reads
        paths = Workspace.of(cfg)
        ds = load_dataset(cfg.data, cwd=cwd, cache_dir=paths.dataset_cache)
        chosen = resolve_prompt(cfg, ds)
        k = cfg.knowledge
        backend = create_backend(k.extractor, k.llm_model, k.llm_url, n_threads=cfg.train.num_threads,
                                 llm_concurrency=k.llm_concurrency)
        items = list(range(1, min(limit, ds.num_items) + 1)) if limit else None
        progress = Progress(TextColumn("[bold]extracting"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                            console=err_console, transient=True)
        task = progress.add_task("extract", total=len(items) if items else ds.num_items, rate="")
        with ExtractionCache(paths.extraction_cache) as cache, progress:
            import_shipped_extractions(cache, backend.fingerprint, chosen.content_hash)
            try:
                report = extract_items(
                    ds, chosen, backend, cache, item_indices=items, retry_failed=retry_failed,
                    on_event=print_status,
                    on_progress=lambda p: progress.update(task, completed=p.done, total=p.total,
                                                          rate=f"{p.items_per_second:.2f} items/s"),
                )
            except KeyboardInterrupt:
                err_console.print("interrupted: every answer so far is cached; run the same command to continue")
                raise typer.Exit(EXIT_INTERRUPTED) from None
            if export:
                count = export_extractions(cache, ds, chosen, backend.fingerprint, export)
                err_console.print(f"wrote {count} answers to {export}")
    typer.echo(
        f"{ds.name} / {chosen.name} ({chosen.content_hash[:12]}): {report.extracted} extracted, "
        f"{report.from_cache} cached, {report.failed} failed, {report.items_per_second:.2f} items/s"
    )
    for failure in report.failures[:5]:
        err_console.print(f"[yellow]failed[/] {failure.item_id}: {failure.error} (raw: {failure.raw_output[:80]!r})")
    if report.failed and not report.extracted and not report.from_cache:
        raise typer.Exit(EXIT_FAILED)
