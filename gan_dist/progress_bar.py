"""The one progress bar of gan_dist (rich, on stderr): training epochs, packing data, Inception features."""

from __future__ import annotations


def progress_bar(label: str = "{task.description}", *, enabled: bool = True, rate: bool = False,
                 terminal_only: bool = True, auto_refresh: bool = True):
    """A rich Progress: LABEL, bar, n/N, the task's `rate` field if `rate`, time left.

    terminal_only: live on a terminal only (in logs and pipes its frames would be noise beside
    the rows); training keeps its final frame in logs too, and redraws it itself
    (auto_refresh=False: no 10 Hz thread competing for 2 cores)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True, quiet=not enabled)
    columns = [TextColumn(label), BarColumn(), MofNCompleteColumn(),
               *([TextColumn("{task.fields[rate]}")] if rate else []), TimeRemainingColumn()]
    return Progress(*columns, console=console, transient=False, auto_refresh=auto_refresh,
                    disable=not enabled or (terminal_only and not console.is_terminal))
