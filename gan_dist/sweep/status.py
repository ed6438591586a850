"""`gan sweep status NAME`: one table row per point (rich)."""

from __future__ import annotations

from gan_dist.config import flag
from gan_dist.report.runs_table import STATUS_STYLE, _num
from gan_dist.sweep.grid import value_text
from gan_dist.sweep.spec import Sweep
from gan_dist.sweep.state import PointState, counts

STYLES = {**STATUS_STYLE, "queued": "magenta", "pending": "dim", "diverged": "red"}


def status_table(sweep: Sweep, states: list[PointState]):
    """Columns: point, the options that vary (else the point's name), state, epochs, last
    losses, last quality, the Slurm task."""
    from rich.table import Table

    varying = sweep.varying
    table = Table(title=f"sweep {sweep.name} ({sweep.folder}): {counts(states)}")
    table.add_column("#", justify="right")
    for key in varying or ["point"]:
        table.add_column(flag(key)[2:] if varying else key, no_wrap=True)
    table.add_column("state")
    table.add_column("epochs", justify="right")
    table.add_column("G loss", justify="right")
    table.add_column("D loss", justify="right")
    table.add_column("FD (epoch)", justify="right")
    table.add_column("Slurm task")
    for s in states:
        cells = [value_text(s.point.values[k]) for k in varying] if varying else [s.point.name]
        style = STYLES.get(s.state, "")
        fd = "-" if s.last["fd"] is None else f"{_num(s.last['fd'], '.2f')} ({s.last['fd_epoch']})"
        table.add_row(str(s.point.index), *cells, f"[{style}]{s.state}[/]" if style else s.state,
                      f"{s.epochs_done}/{s.epochs_total}", _num(s.last["g_loss"], ".4f"),
                      _num(s.last["d_loss"], ".4f"), fd, s.slurm or "-")
    return table
