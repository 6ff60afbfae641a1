"""One rendering of engine events as Rich-markup lines, shared by the CLI's progress display and the Train
screen's log (Textual's RichLog takes the same markup), so both say the same thing in the same colours."""

from __future__ import annotations

from engine.events import EpochEnd, Event, RunFinished, RunStarted, Status

LEVEL_STYLES = {"warning": "yellow", "error": "red"}  # any other level (info) is dimmed


def event_line(event: Event) -> str | None:
    """The log line of an event, or None for events shown otherwise (bars, charts, the device panel)."""
    if isinstance(event, Status):
        return f"[{LEVEL_STYLES.get(event.level, 'dim')}]{event.message}[/]"
    if isinstance(event, RunStarted):
        return f"run [bold]{event.run_id}[/] {event.name} on {event.device}"
    if isinstance(event, EpochEnd):
        if not event.valid:  # not validated this epoch (eval.every)
            return f"epoch {event.epoch:3d}  loss {event.train_loss:.4f}  ({event.train_seconds:.1f}s)"
        best = " [green]best[/]" if event.is_best else ""
        ndcg, hr = event.valid.get("NDCG@10", float("nan")), event.valid.get("HR@10", float("nan"))
        return (
            f"epoch {event.epoch:3d}  loss {event.train_loss:.4f}  valid NDCG@10 {ndcg:.4f}  HR@10 {hr:.4f}"
            f"  ({event.train_seconds:.1f}s + {event.eval_seconds:.1f}s eval){best}"
        )
    if isinstance(event, RunFinished):
        colour = "green" if event.status == "FINISHED" else "red"
        test = "  ".join(f"{k} {v:.4f}" for k, v in event.test.items() if k.endswith("@10"))
        return (
            f"run {event.run_id} [{colour}]{event.status}[/]"
            + (f": {event.error}" if event.error else "")
            + (f"   test {test}" if test else "")
        )
    return None
