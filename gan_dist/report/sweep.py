"""`gan compare OUT/NAME` of a sweep folder: the whole grid in one document.

The grid as a table with one metric per point; the points that differ only by --seed grouped
(mean ± sample standard deviation over seeds, as a matrix when two other options vary); the
best point and the best setting; the curves of every point; the best point's final samples.

The metric: --metric NAME, else the Fréchet distance at each point's last evaluated epoch when
every point with results has one (`gan eval`, or --eval-epochs), else the generator loss of the
last epoch, a weak proxy that the document calls one. Only finished points count towards the
means and the best (all points with results when none has finished, and the document says so).

Torch-free, like the rest of the report package: it reads sweep.json and the run directories.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

from gan_dist.config import check_choice, flag
from gan_dist.errors import GanError
from gan_dist.report import describe as d
from gan_dist.report.output import (
    PACKAGE_TEMPLATES,
    check_output,
    check_template_dir,
    publish,
    render_template,
)
from gan_dist.report.plots import Series, disc_figure, loss_figure, quality_figure
from gan_dist.report.rundata import load_run
from gan_dist.sweep.grid import value_text
from gan_dist.sweep.spec import Sweep, option_args, read_sweep
from gan_dist.sweep.state import FINISHED, point_states

# name: (file it is read from, which way is better, what it is)
METRICS = {
    "fd": ("quality", "lower", "Fréchet distance at the last evaluated epoch"),
    "kid": ("quality", "lower", "KID at the last evaluated epoch"),
    "kl_uniform": ("quality", "lower", "KL(generated classes ‖ uniform) at the last evaluated epoch"),
    "precision": ("quality", "higher", "precision at the last evaluated epoch"),
    "recall": ("quality", "higher", "recall at the last evaluated epoch"),
    "modes": ("quality", "higher", "modes covered at the last evaluated epoch"),
    "confident": ("quality", "higher", "share of confidently classified samples at the last evaluated epoch"),
    "g_loss": ("metrics", "lower", "generator loss of the last epoch"),
}
SEED = "seed"


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def metric_value(run: dict | None, metric: str) -> tuple[float | None, int | None]:
    """(the metric at the point's last row that has it, that row's epoch)."""
    if run is None:
        return None, None
    for row in reversed(run[METRICS[metric][0]]):
        value = _number(row.get(metric))
        if value is not None:
            return value, row.get("epoch")
    return None, None


def choose_metric(runs: list[dict | None], requested: str | None) -> str:
    if requested:
        check_choice("metric", requested, tuple(METRICS))
        return requested
    with_results = [r for r in runs if r is not None]
    evaluated = with_results and all(metric_value(r, "fd")[0] is not None for r in with_results)
    return "fd" if evaluated else "g_loss"


def _load(path: Path) -> dict | None:
    """A point's run, or None before its first epoch."""
    try:
        return load_run(path) if (path / "config.json").is_file() else None
    except GanError:
        return None


def _spread(values: list[float]) -> dict[str, Any]:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else None
    return {"n": len(values), "mean": mean, "sd": sd, "min": min(values), "max": max(values)}


def spread_text(s: dict[str, Any], spec: str) -> str:
    if s["sd"] is None:
        return f"{format(s['mean'], spec)} (1 seed)"
    return f"{format(s['mean'], spec)} ± {format(s['sd'], spec)} ({s['n']} seeds)"


def point_rows(sweep: Sweep, runs: list[dict | None], metric: str) -> list[dict[str, Any]]:
    states = point_states(sweep, None)
    rows = []
    for point, state, run in zip(sweep.points, states, runs):
        value, epoch = metric_value(run, metric)
        rows.append({"index": point.index, "name": point.name, "values": point.values,
                     "cells": [value_text(point.values[k]) for k in sweep.varying],
                     "state": state.state, "finished": state.state == FINISHED,
                     "epochs": f"{state.epochs_done}/{state.epochs_total}", "value": value, "epoch": epoch,
                     "g_loss": state.last["g_loss"], "d_loss": state.last["d_loss"]})
    return rows


def _best(candidates: list[dict], key: str, direction: str) -> dict | None:
    candidates = [c for c in candidates if c[key] is not None]
    if not candidates:
        return None
    pick = min if direction == "lower" else max
    return pick(candidates, key=lambda c: c[key])


def seed_groups(sweep: Sweep, counted: list[dict]) -> list[dict[str, Any]]:
    """The points that differ only by seed, with the metric's spread over them."""
    keys = [k for k in sweep.varying if k != SEED]
    groups: dict[tuple, list[float]] = {}
    for row in counted:
        groups.setdefault(tuple(row["values"][k] for k in keys), []).append(row["value"])
    return [{"values": dict(zip(keys, combo)), "cells": [value_text(v) for v in combo], **_spread(values)}
            for combo, values in groups.items()]


def matrix(sweep: Sweep, groups: list[dict], spec: str) -> dict[str, Any] | None:
    """Two options besides the seed vary: the groups as rows (first) x columns (second)."""
    keys = [k for k in sweep.varying if k != SEED]
    if len(keys) != 2:
        return None
    row_key, col_key = keys
    by = {(g["values"][row_key], g["values"][col_key]): spread_text(g, spec) for g in groups}
    return {"row_label": flag(row_key)[2:], "col_label": flag(col_key)[2:],
            "columns": [value_text(v) for v in sweep.grid[col_key]],
            "rows": [{"label": value_text(r), "cells": [by.get((r, c), "—") for c in sweep.grid[col_key]]}
                     for r in sweep.grid[row_key]]}


def build_context(sweep: Sweep, runs: list[dict | None], *, metric: str, title: str | None) -> dict[str, Any]:
    source, direction, words = METRICS[metric]
    spec = ".2f" if metric in ("fd", "modes") else ".4f"
    rows = point_rows(sweep, runs, metric)
    counted = [r for r in rows if r["finished"] and r["value"] is not None]
    notes = []
    if not counted:
        counted = [r for r in rows if r["value"] is not None]
        if counted:
            notes.append("No point has finished yet: the figures are each point's latest, not its final ones.")
    if metric == "g_loss":
        notes.append("Not every point was evaluated, so the points are ranked by their final generator loss: "
                     "a weak proxy for sample quality. Evaluate them (gan eval, or train with --eval-epochs) "
                     "to rank them by Fréchet distance.")
    seeds = SEED in sweep.varying
    groups = seed_groups(sweep, counted) if seeds and counted else []
    labelled = [(r, run) for r, run in zip(rows, runs) if run is not None]
    series = [Series(_label(sweep, r), run["metrics"], run["quality"], color=f"C{i % 10}",
                     loss=d.loss_facts(run["config"]).name) for i, (r, run) in enumerate(labelled)]
    best = _best(counted, "value", direction)
    best_run = runs[best["index"]] if best else None
    return {
        "title": title or f"Sweep {sweep.name}", "date": time.strftime("%d %B %Y"), "sweep": sweep,
        "folder": str(sweep.folder), "grid": [(flag(k)[2:], ", ".join(value_text(v) for v in vs))
                                               for k, vs in sweep.grid.items()],
        "fixed": " ".join(option_args(sweep.options)),
        "varying": [flag(k)[2:] for k in sweep.varying], "rows": rows, "notes": notes,
        "metric": {"name": metric, "words": words, "direction": direction, "spec": spec},
        "groups": groups, "matrix": matrix(sweep, groups, spec) if groups else None, "seeds": seeds,
        "group_keys": [flag(k)[2:] for k in sweep.varying if k != SEED],
        "best": best, "best_group": _best(groups, "mean", direction),
        "counted": len(counted), "finished": sum(r["finished"] for r in rows),
        "plots": {"loss": loss_figure(series), "disc": disc_figure(series),
                  "quality": quality_figure(series)} if series else None,
        "losses": d.overlay_losses([s.loss for s in series] or ["nonsaturating"]),
        "best_sample": _final_sample(best_run),
    }


def _label(sweep: Sweep, row: dict) -> str:
    return ", ".join(f"{k}={c}" for k, c in zip((flag(k)[2:] for k in sweep.varying), row["cells"])) or row["name"]


def _final_sample(run: dict | None) -> dict | None:
    if run is None:
        return None
    saved = [e for e in sorted(run["samples"]) if any(m["epoch"] == e for m in run["metrics"])]
    return d.sample_figure(run, saved[-1]) if saved else None


def render_sweep(folder: Path, output: Path | None = None, *, html: Path | None = None, title: str | None = None,
                 template_dir: Path | None = None, force: bool = False, metric: str | None = None) -> Path:
    """Render sweep `folder` to `output` (default FOLDER/sweep.pdf, replaced when it exists)."""
    sweep = read_sweep(Path(folder))
    check_template_dir(template_dir)
    runs = [_load(sweep.run_dir(p)) for p in sweep.points]
    if not any(runs):
        raise GanError(f"no point of sweep {sweep.name} has finished an epoch yet: compare it once one has "
                       f"(gan sweep status {sweep.name})")
    metric = choose_metric(runs, metric)
    owned = sweep.folder / "sweep.pdf"
    output = check_output(Path(output or owned), ".pdf", force, replaceable=owned)
    html = check_output(Path(html), ".html", force) if html else None
    text = render_template("sweep.html", build_context(sweep, runs, metric=metric, title=title), template_dir)
    roots = [PACKAGE_TEMPLATES, sweep.folder] + ([Path(template_dir)] if template_dir else [])
    publish(text, output, html=html, roots=roots, base_url=sweep.folder)
    return output
