"""`gan report`: a run directory in, the coursework report out (HTML -> PDF with WeasyPrint).

The report describes what was actually trained: the dataset, the networks (layer tables and
parameter counts), conditional grids with class names, the EMA generator, stops and resumes,
quality curves in whatever feature space they were measured. The coursework's text stays; the
parts that depend on the network or the data follow the run.

Never imports torch (directly or through another gan_dist module): a report must render on a
laptop that cannot train. WeasyPrint loads files only from the template directories and the
run directory; user text is escaped by Jinja's autoescape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gan_dist.epochs import parse_epoch_list
from gan_dist.report import describe as d
from gan_dist.report.output import (
    PACKAGE_TEMPLATES,
    check_output,
    check_template_dir,
    make_url_fetcher,
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
)
from gan_dist.report.rundata import load_run

__all__ = [
    "build_context",
    "load_run",
    "make_url_fetcher",
    "render_html",
    "render_report",
]
log = logging.getLogger(__name__)


def build_context(run: dict, *, title: str | None, author: str | None, student_id: str | None,
                  course: str | None, epochs: Sequence[int] | None) -> dict[str, Any]:
    cfg, metrics, status = run["config"], run["metrics"], run["status"]
    env = cfg.get("env") if isinstance(cfg.get("env"), dict) else {}
    last = metrics[-1]
    total = cfg.get("epochs")
    state = status.get("state")
    partial = (isinstance(total, int) and last["epoch"] < total) or state in ("running", "stopped", "failed")
    shown, figure_notes = d.figure_epochs(epochs, run)
    seconds, ips = d.numbers(metrics, "seconds"), d.numbers(metrics, "images_per_second")
    total_seconds = last.get("elapsed_seconds") if isinstance(last.get("elapsed_seconds"), (int, float)) else sum(seconds)
    data, nets, where = d.dataset_facts(cfg), d.network_facts(cfg), d.placement(cfg, metrics)
    timeline = d.timeline(run["events"])
    quality = d.quality_table(run["quality"])
    loss = d.loss_facts(cfg)
    series = Series("run", metrics, run["quality"], marks=timeline["resume_epochs"] if timeline else [],
                    loss=loss.name)
    plots = {"loss": loss_figure([series]), "disc": disc_figure([series]), "recipe": recipe_figure([series]),
             "quality": quality_plots([series], quality["features"]), "modes": modes_figure([series])}
    fig, number = {}, 1  # figure numbers, in the order the report shows them
    for name in ("loss", "disc", "recipe", "quality", "modes"):
        fig[name] = number if plots[name] else None
        number += (len(plots[name]) if name == "quality" else 1) if plots[name] else 0
    return {
        "title": title or f"Generative Adversarial Networks on {data['title']}",
        "author": author, "student_id": student_id, "course": course,
        "date": time.strftime("%d %B %Y"),
        "run_name": cfg.get("name") or run["dir"].resolve().name,
        "cfg": cfg, "env": env, "last": last, "total_epochs": total, "epochs_done": last["epoch"],
        "state": state or ("finished" if not partial else "incomplete"), "partial": partial,
        "bad_lines": run["bad_lines"], "figure_notes": figure_notes,
        "figures": [d.sample_figure(run, e) for e in shown],
        "data": data, "nets": nets, "where": where, "timeline": timeline,
        "grid": cfg.get("grid") if isinstance(cfg.get("grid"), dict) else {"rows": 8, "cols": 8},
        "plots": plots, "fig": fig,
        "config_rows": d.config_rows(cfg), "dataset_rows": d.dataset_rows(data),
        "hardware_rows": [
            ("Device", where["device"]),
            ("World size (processes)", d.fmt(where["world_size"])),
            ("Nodes", d.fmt(where["nodes"])), ("Host", d.fmt(env.get("hostname"))),
            ("Platform", d.fmt(env.get("platform"))),
            ("Software", (f"gan_dist {d.fmt(env.get('gan_dist'))}, Python {d.fmt(env.get('python'))}, "
                          f"torch {d.fmt(env.get('torch'))}, accelerate {d.fmt(env.get('accelerate'))}")),
        ],
        "throughput_rows": [
            ("Epochs completed", f"{last['epoch']} of {d.fmt(total)}"),
            ("Total training time", d.duration(total_seconds)),
            ("Mean time per epoch", f"{d.fmt(sum(seconds) / len(seconds), '.2f')} s" if seconds else "—"),
            ("Mean throughput", f"{d.fmt(sum(ips) / len(ips), ',.0f')} images/s" if ips else "—"),
            ("Optimiser steps", d.fmt(sum(r.get("steps", 0) or 0 for r in metrics) or None, ",")),
        ],
        "networks": d.network_tables(cfg),
        "quality": quality, "features_text": [d.features_text(f, data) for f in quality["features"]],
        "stacked_text": d.STACKED_TEXT,
        "ln2": d.LN2, "k": cfg.get("k_disc", 1), "loss_kind": loss.name, "loss": loss,
        "terms": d.loss_terms(cfg), "recipe": d.recipe_facts(cfg, metrics), "references": d.references(cfg),
    }


def render_html(run_dir: Path, *, template_dir: Path | None = None, **options: Any) -> str:
    run = load_run(Path(run_dir))
    return render_template("report.html", build_context(run, **options), template_dir)


def render_report(run_dir: Path, output: Path | None = None, *, html: Path | None = None,
                  title: str | None = None, author: str | None = None,
                  student_id: str | None = None, course: str | None = None,
                  epochs: Sequence[int] | str | None = None, template_dir: Path | None = None,
                  force: bool = False) -> Path:
    """Render RUN_DIR's report to `output` (default RUN_DIR/report.pdf); return its path.

    Only RUN_DIR/report.pdf (and report.html) are replaced without --force. `epochs` chooses
    the sample grids shown; by default the run's own saved ones."""
    run_dir = Path(run_dir)
    if isinstance(epochs, str):
        epochs = list(parse_epoch_list(epochs, "--epochs")) if epochs else None
    check_template_dir(template_dir)
    started = time.perf_counter()
    load_run(run_dir)  # refuse a non-run before judging the output paths
    output = check_output(Path(output or run_dir / "report.pdf"), ".pdf", force, run_dir / "report.pdf")
    html = check_output(Path(html), ".html", force, run_dir / "report.html") if html else None
    text = render_html(run_dir, template_dir=template_dir, title=title, author=author,
                       student_id=student_id, course=course, epochs=epochs)
    roots = [PACKAGE_TEMPLATES, run_dir] + ([Path(template_dir)] if template_dir else [])
    publish(text, output, html=html, roots=roots, base_url=run_dir)
    log.info("report: %s in %.1f s", output, time.perf_counter() - started)
    return output
