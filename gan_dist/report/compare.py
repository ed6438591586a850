"""`gan compare RUN_DIR... -o compare.pdf`: several runs in one document.

Loss curves and D outputs overlaid (reference lines and legends follow the runs' losses),
the penalties and augmentation p where runs logged them, speed, quality over epochs, the
final grids side by side, and a table of only the settings that differ. When the runs differ only in where they ran
(processes x nodes), a scaling table and plot: images/s against processes, speed-up and
efficiency relative to the smallest world size.

One sweep folder instead of runs: the sweep's own document (report/sweep.py).

Same rules as `gan report` (it shares its reading, plotting and output code): torch-free,
nothing loaded from outside the run and template directories, every user string escaped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gan_dist.errors import GanError
from gan_dist.report import describe as d
from gan_dist.report.output import (
    PACKAGE_TEMPLATES,
    check_output,
    check_template_dir,
    publish,
    render_template,
)
from gan_dist.report.plots import (
    Series,
    disc_figure,
    loss_figure,
    modes_figure,
    quality_plots,
    recipe_figure,
    scaling_figure,
    speed_figure,
)
from gan_dist.report.rundata import load_run

log = logging.getLogger(__name__)
PLACEMENT_OPTION = "--processes / --gpus / --nodes"
# Resumable, so not part of the optimisation, but they change the speed: no scaling across them.
SPEED_SETTINGS = {"compile"}


def run_labels(runs: Sequence[dict]) -> list[str]:
    """Each run's name (config.json's, else its folder's); the parent folder added where two
    runs share a name."""
    names = [str(r["config"].get("name") or r["dir"].resolve().name) for r in runs]
    labels = [f"{r['dir'].resolve().parent.name}/{n}" if names.count(n) > 1 else n
              for r, n in zip(runs, names)]
    return [f"{label} ({i + 1})" if labels.count(label) > 1 else label for i, label in enumerate(labels)]


def _off_as_none(value: Any) -> Any:
    """Off (no, 0, empty) and not acting (None, shown '—') say the same thing: a dcgan's
    'conditional: no' beside an MLP's '—' is no difference."""
    return None if isinstance(value, (bool, int, float, str, list, tuple)) and not value else value


def differences(runs: Sequence[dict]) -> list[dict[str, Any]]:
    """Only the settings whose values are not all equal, as table rows (one value per run).
    Identity and paths (name, out, resume, data_dir, env) are not settings; where the run ran
    (processes x nodes, device) is."""
    configs = [r["config"] for r in runs]
    rows = []
    for key in d.setting_keys(configs):
        values = [d.setting_value(cfg, key) for cfg in configs]
        compared = [_off_as_none(v) for v in values]
        if any(v != compared[0] for v in compared[1:]):
            label, spec = d.setting_label(key)
            rows.append({"label": label, "option": "--" + key.replace("_", "-"), "key": key,
                         "kind": d.setting_kind(key),
                         "cells": [d.fmt(v, spec) for v in values]})
    places = [d.placement(r["config"], r["metrics"]) for r in runs]
    for key, label in (("text", "World size (processes)"), ("device", "Device")):
        values = [p[key] for p in places]
        if any(v != values[0] for v in values[1:]):
            rows.append({"label": label, "option": PLACEMENT_OPTION if key == "text" else "--cpu / --gpus",
                         "key": key, "kind": "world" if key == "text" else "hardware", "cells": values})
    return rows


def scaling(runs: Sequence[dict], labels: Sequence[str], diffs: Sequence[dict]) -> dict | None:
    """Speed against world size, when nothing but the world size (and what is recorded)
    differs. Images/s is the median over each run's epochs run at that world size (robust to
    the first epoch's warm-up); runs of equal size are pooled."""
    if not any(row["kind"] == "world" for row in diffs) or any(
            row["kind"] in ("train", "hardware") or row["key"] in SPEED_SETTINGS for row in diffs):
        return None
    groups: dict[tuple[int, Any], dict[str, list]] = {}
    for run, label in zip(runs, labels):
        place = d.placement(run["config"], run["metrics"])
        world = place["world_size"]
        rows = [r for r in run["metrics"] if r.get("world_size", world) == world]
        group = groups.setdefault((world, place["nodes"]), {"ips": [], "seconds": [], "runs": []})
        group["ips"] += d.numbers(rows, "images_per_second")
        group["seconds"] += d.numbers(rows, "seconds")
        group["runs"].append(label)
    if len({world for world, _ in groups}) < 2 or any(not g["ips"] for g in groups.values()):
        return None
    points = []
    for (world, nodes), g in sorted(groups.items(), key=lambda item: item[0]):
        points.append({"world_size": world, "nodes": nodes, "runs": ", ".join(g["runs"]),
                       "images_per_second": d.median(g["ips"]), "seconds": d.median(g["seconds"])})
    base = points[0]
    for p in points:
        p["speedup"] = p["images_per_second"] / base["images_per_second"]
        p["efficiency"] = p["speedup"] / (p["world_size"] / base["world_size"])
    return {"points": points, "base": base, "plot": scaling_figure(points)}


def _glance(run: dict) -> dict[str, str]:
    """One column of the 'runs at a glance' table."""
    cfg, metrics, last = run["config"], run["metrics"], run["metrics"][-1]
    quality = max(run["quality"], key=lambda r: r["epoch"]) if run["quality"] else {}  # the newest epoch's
    timeline = d.timeline(run["events"])
    return {
        "Run directory": str(run["dir"]), "Dataset": d.dataset_facts(cfg)["title"],
        "Networks": d.network_facts(cfg)["phrase"],
        "Loss (D and G loss where D cannot tell)": _loss_words(cfg),
        "Epochs": f"{last['epoch']} of {d.fmt(cfg.get('epochs'))}",
        "World size (processes)": d.placement(cfg, metrics)["text"],
        "Device": d.placement(cfg, metrics)["device"],
        "Status": d.fmt(run["status"].get("state")),
        "Sessions": timeline["summary"] if timeline else "—",
        "Final G loss": d.fmt(last.get("g_loss"), ".4f"), "Final D loss": d.fmt(last.get("d_loss"), ".4f"),
        "Final D(x), D(G(z))": f"{d.fmt(last.get('d_real'), '.3f')}, {d.fmt(last.get('d_fake'), '.3f')}",
        "Median images/s": d.fmt(d.median(d.numbers(metrics, "images_per_second")), ",.0f"),
        "Median s per epoch": d.fmt(d.median(d.numbers(metrics, "seconds")), ".2f"),
        "Training time": d.duration(last.get("elapsed_seconds")),
        "Last FD (epoch)": (f"{d.fmt(quality.get('fd'), '.2f')} ({quality['epoch']}"
                            f"{', inception FID' if quality.get('features') == 'inception' else ''})" if quality else "—"),
    }


def _loss_words(cfg: dict) -> str:
    facts = d.loss_facts(cfg)
    return f"{facts.name} ({facts.words})" if facts.words else facts.name


def recipe_caption(runs: Sequence[dict]) -> str:
    """The caption of the penalties / p figure, naming only the panels it has."""
    rows = [row for run in runs for row in run["metrics"]]
    parts = []
    if d.numbers(rows, "r1_penalty") or d.numbers(rows, "r2_penalty"):
        parts.append("the gradient penalties as added to D's loss (mean per D step; R1 solid, R2 dashed; not part "
                     "of the discriminator losses above)")
    if d.numbers(rows, "augment_p"):
        parts.append("DiffAugment's probability p at the end of each epoch")
    if not parts:
        return ""
    text = f"Left: {parts[0]}; right: {parts[1]}" if len(parts) == 2 else parts[0][0].upper() + parts[0][1:]
    return text + ", for the runs that logged them."


def build_context(runs: Sequence[dict], *, title: str | None) -> dict[str, Any]:
    labels = run_labels(runs)
    diffs = differences(runs)
    data = [d.dataset_facts(r["config"]) for r in runs]
    features = [d.quality_table(r["quality"])["features"] if r["quality"] else [] for r in runs]
    notes = []
    by_dataset: dict[str, list[str]] = {}
    for label, x in zip(labels, data):
        by_dataset.setdefault(x["title"], []).append(label)
    if len({x["name"] for x in data}) > 1:
        notes.append("These runs were trained on different datasets ("
                     + "; ".join(f"{title}: {', '.join(names)}" for title, names in by_dataset.items())
                     + "): their losses, discriminator outputs and quality numbers describe different "
                       "problems and are not directly comparable.")
    measured = {f for fs in features for f in fs}
    if len(measured) > 1:
        notes.append(f"Quality was measured in different feature spaces ({', '.join(sorted(measured))}): "
                     "Fréchet distances are comparable only between runs measured in the same one.")
    palette = [f"C{i % 10}" for i in range(len(runs))]
    series = [Series(label, r["metrics"], r["quality"], color=c, loss=d.loss_facts(r["config"]).name)
              for label, r, c in zip(labels, runs, palette)]
    glance = [_glance(r) for r in runs]
    grid_mm = 62.0 if len(runs) == 2 else 46.0
    finals = []
    for label, run in zip(labels, runs):
        saved = [e for e in sorted(run["samples"]) if any(m["epoch"] == e for m in run["metrics"])]
        finals.append({"label": label, "figure": d.sample_figure(run, saved[-1], width_mm=grid_mm) if saved else None})
    return {
        "title": title or f"Comparing {len(runs)} GAN runs", "date": time.strftime("%d %B %Y"),
        "labels": labels, "notes": notes, "diffs": diffs,
        "glance": [(key, [g[key] for g in glance]) for key in glance[0]
                   if any(g[key] != "—" for g in glance)],
        "scaling": scaling(runs, labels, diffs), "finals": finals, "thirds": len(runs) > 2,
        "plots": {"loss": loss_figure(series), "disc": disc_figure(series), "speed": speed_figure(series),
                  "quality": quality_plots(series, sorted(measured)), "modes": modes_figure(series),
                  "recipe": recipe_figure(series)},
        "losses": d.overlay_losses([s.loss for s in series]), "recipe_caption": recipe_caption(runs),
    }


def render_compare(run_dirs: Sequence[Path], output: Path | None = None, *, html: Path | None = None,
                   title: str | None = None, template_dir: Path | None = None,
                   force: bool = False, metric: str | None = None) -> Path:
    """Render the comparison of RUN_DIRS to `output` (default ./compare.pdf); return its path.
    One sweep folder (gan sweep's OUT/NAME) is rendered as a sweep (report/sweep.py).
    Every input is checked before anything is written."""
    run_dirs = [Path(p) for p in run_dirs]
    if len(run_dirs) == 1 and (run_dirs[0] / "sweep.json").is_file():
        from gan_dist.report.sweep import render_sweep

        return render_sweep(run_dirs[0], output, html=html, title=title, template_dir=template_dir,
                            force=force, metric=metric)
    if metric is not None:
        raise GanError("--metric is for a sweep folder (gan compare OUT/NAME of a gan sweep): drop it")
    if len(run_dirs) < 2:
        raise GanError(f"gan compare needs at least 2 run directories, got {len(run_dirs)}: "
                       "pass RUN_A RUN_B [...], or one sweep folder")
    seen: dict[Path, Path] = {}
    for path in run_dirs:
        if path.resolve() in seen:
            raise GanError(f"{path} is given twice (also as {seen[path.resolve()]}); pass each run once")
        seen[path.resolve()] = path
    check_template_dir(template_dir)
    started = time.perf_counter()
    runs = [load_run(p) for p in run_dirs]
    output = check_output(Path(output or "compare.pdf"), ".pdf", force)
    html = check_output(Path(html), ".html", force) if html else None
    text = render_template("compare.html", build_context(runs, title=title), template_dir)
    roots = [PACKAGE_TEMPLATES, *run_dirs] + ([Path(template_dir)] if template_dir else [])
    publish(text, output, html=html, roots=roots, base_url=run_dirs[0])
    log.info("compare: %s in %.1f s", output, time.perf_counter() - started)
    return output
