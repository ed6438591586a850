"""`gan report`: a run directory in, the coursework report out (HTML -> PDF with WeasyPrint).

Reads only RUN_DIR/config.json, metrics.jsonl, quality.jsonl, status.json and samples/.
Never imports torch (directly or through another gan_dist module): a report must render on a
laptop that cannot train. WeasyPrint loads files only from the template directories and the
run directory; user text is escaped by Jinja's autoescape.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import re
import time
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import unquote, urlparse

from gan_dist.config import OPTIONS, report_labels
from gan_dist.epochs import parse_epoch_list
from gan_dist.errors import GanError
from gan_dist.rundir import epoch_files, read_jsonl, write_atomic

PACKAGE_TEMPLATES = Path(__file__).parent / "templates"
DEFAULT_EPOCHS = (10, 20, 50, 100)
LN2 = math.log(2)
log = logging.getLogger(__name__)


# --- reading the run directory --------------------------------------------------------------
def load_run(run_dir: Path) -> dict[str, Any]:
    """Everything the report needs from RUN_DIR, or a GanError naming what is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GanError(f"{run_dir} is not a directory; pass a run directory written by `gan train`")
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise GanError(f"{run_dir} is not a run directory (no config.json); pass the directory "
                       "`gan train` wrote, e.g. runs/<name>")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise GanError(f"{config_path} is not valid JSON ({err}); restore it from the run") from None
    if not isinstance(config, dict):
        raise GanError(f"{config_path} is not a JSON object; restore it from the run")
    metrics, bad_lines = read_jsonl(run_dir / "metrics.jsonl")
    if not metrics:
        raise GanError(f"{run_dir} has no completed epoch in metrics.jsonl; report once the "
                       "first epoch has finished")
    quality, _ = read_jsonl(run_dir / "quality.jsonl")
    try:
        status = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        status = {}
    samples = epoch_files(run_dir / "samples", ".png")
    return {"dir": run_dir, "config": config, "metrics": metrics, "bad_lines": bad_lines,
            "quality": quality, "status": status if isinstance(status, dict) else {},
            "samples": samples}


# --- formatting -----------------------------------------------------------------------------
def dataset_title(cfg: dict) -> str:
    """'MNIST', or for the shipped sample 'MNIST (5,000-image sample)': never a bare slug."""
    name = str(cfg.get("dataset", "mnist"))
    if name == "mnist-sample":
        size = cfg.get("dataset_size")
        return f"MNIST ({size:,}-image sample)" if isinstance(size, int) else "MNIST (sample)"
    return name.upper()


def fmt(value: Any, spec: str = "") -> str:
    """A number with `spec`, or the value as text; '—' when absent."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)) and spec:
        return format(value, spec)
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items()) or "—"
    return str(value)


def duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "—"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def caption(row: dict, total_epochs: Any) -> str:
    """The coursework's caption, from this run's own figures."""
    return (f"Epoch {row['epoch']} of {fmt(total_epochs)} with {fmt(row.get('seconds'), '.2f')} s"
            f" — Generator loss: {fmt(row.get('g_loss'), '.4f')},"
            f" Discriminator loss: {fmt(row.get('d_loss'), '.4f')}")


def choose_figures(requested: Sequence[int], run: dict) -> tuple[list[dict], list[str]]:
    """Sample grids for the requested epochs: exact when saved, else the nearest saved one."""
    by_epoch = {row["epoch"]: row for row in run["metrics"]}
    saved = sorted(e for e in run["samples"] if e in by_epoch)
    total = run["config"].get("epochs")
    figures: dict[int, dict] = {}
    notes: list[str] = []
    if not saved:
        return [], ["No sample grid has been saved for an epoch with metrics yet (samples/ is empty)."]
    for want in requested:
        got = min(saved, key=lambda e: (abs(e - want), e))
        if got != want:
            why = "was not reached by this run" if want > run["metrics"][-1]["epoch"] else "has no saved sample grid"
            notes.append(f"Epoch {want} {why}; showing epoch {got}, the nearest saved one.")
        figures.setdefault(got, {"epoch": got, "url": run["samples"][got].resolve().as_uri(),
                                 "caption": caption(by_epoch[got], total)})
    return [figures[e] for e in sorted(figures)], notes


# --- plots (matplotlib, no pyplot: no global backend state) ----------------------------------
def _png_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=160)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _figure(ncols: int = 1, height: float = 2.6):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.6, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_xlabel("epoch")
    return fig, axes


def make_plots(metrics: list[dict], quality: list[dict]) -> dict[str, str | None]:
    import matplotlib

    with matplotlib.rc_context({"font.size": 8, "mathtext.fontset": "cm",
                                "axes.spines.top": False, "axes.spines.right": False}):
        epochs = [r["epoch"] for r in metrics]
        col = lambda rows, key: [r.get(key, math.nan) for r in rows]  # noqa: E731
        marker = "o" if len(epochs) < 30 else None

        fig, (ax,) = _figure()
        ax.plot(epochs, col(metrics, "d_loss"), color="C0", marker=marker, ms=3, label="Discriminator loss")
        ax.plot(epochs, col(metrics, "g_loss"), color="C1", marker=marker, ms=3, label="Generator loss")
        ax.axhline(2 * LN2, color="C0", ls="--", lw=0.9, label=r"$2\ln 2 \approx 1.386$ (D at equilibrium)")
        ax.axhline(LN2, color="C1", ls="--", lw=0.9, label=r"$\ln 2 \approx 0.693$ (G at equilibrium)")
        ax.set_ylabel("loss (mean over the epoch)")
        ax.legend(ncols=2, loc="upper right", frameon=False)
        ax.set_ylim(0, max(2.6, *[v for v in col(metrics, "g_loss") + col(metrics, "d_loss") if v == v]) * 1.25)
        loss = _png_uri(fig)

        fig, (ax,) = _figure(height=2.3)
        ax.plot(epochs, col(metrics, "d_real"), color="C2", marker=marker, ms=3, label=r"$D(x)$, real images")
        ax.plot(epochs, col(metrics, "d_fake"), color="C3", marker=marker, ms=3, label=r"$D(G(z))$, generated")
        ax.axhline(0.5, color="k", ls="--", lw=0.9, label=r"$\frac{1}{2}$ (equilibrium)")
        ax.set_ylim(0, 1)
        ax.set_ylabel("mean discriminator output")
        ax.legend(ncols=3, loc="upper right", frameon=False)
        disc = _png_uri(fig)

        qual = None
        if quality:
            fig, (a1, a2) = _figure(2, height=2.4)
            qe = [r["epoch"] for r in quality]
            a1.plot(qe, col(quality, "fd"), color="C4", marker="o", ms=3, label="FD")
            a1.set_ylabel("Fréchet distance (lower is better)")
            for key, c in (("precision", "C0"), ("recall", "C1"), ("confident", "C2")):
                a2.plot(qe, col(quality, key), color=c, marker="o", ms=3, label=key)
            a2.set_ylim(0, 1.05)
            a2.legend(frameon=False, loc="lower right")
            qual = _png_uri(fig)
    return {"loss": loss, "disc": disc, "quality": qual}


# --- context for the templates ---------------------------------------------------------------
# (label, key, number format): the options' own labels (declared once, in config.py), then
# what training derived from them.
DERIVED_ROWS = [("Per-process batch", "per_process_batch", ""), ("Steps per epoch", "steps_per_epoch", ""),
                ("Training images", "dataset_size", ","), ("Image shape", "image_shape", "")]
CONFIG_ROWS = [(label, key, "g" if OPTIONS[key].kind is float else "") for label, key in report_labels()] + DERIVED_ROWS


def _rows(cfg: dict, spec: Iterable) -> list[tuple[str, str]]:
    out = []
    for label, key, f in spec:
        keys = key if isinstance(key, tuple) else (key,)
        out.append((label, ", ".join(fmt(cfg.get(k), f) for k in keys)))
    return out


def build_context(run: dict, *, title: str | None, author: str | None, student_id: str | None,
                  course: str | None, epochs: Sequence[int] | None) -> dict[str, Any]:
    cfg, metrics, status = run["config"], run["metrics"], run["status"]
    env = cfg.get("env") if isinstance(cfg.get("env"), dict) else {}
    last = metrics[-1]
    total = cfg.get("epochs")
    state = status.get("state")
    partial = (isinstance(total, int) and last["epoch"] < total) or state in ("running", "stopped", "failed")
    figures, figure_notes = choose_figures(epochs or DEFAULT_EPOCHS, run)
    seconds = [r["seconds"] for r in metrics if isinstance(r.get("seconds"), (int, float))]
    ips = [r["images_per_second"] for r in metrics if isinstance(r.get("images_per_second"), (int, float))]
    total_seconds = last.get("elapsed_seconds") if isinstance(last.get("elapsed_seconds"), (int, float)) else sum(seconds)
    arch = cfg.get("architecture") if isinstance(cfg.get("architecture"), dict) else {}
    params = cfg.get("parameters") if isinstance(cfg.get("parameters"), dict) else {}
    known = {k for _, key, _ in CONFIG_ROWS for k in (key if isinstance(key, tuple) else (key,))}
    extra = [(k, fmt(v)) for k, v in sorted(cfg.items())
             if k not in known | {"env", "architecture", "parameters", "world_size", "name", "out"}
             and not isinstance(v, dict)]
    return {
        "title": title or f"Generative Adversarial Networks on {dataset_title(cfg)}",
        "author": author, "student_id": student_id, "course": course,
        "date": time.strftime("%d %B %Y"),
        "run_name": cfg.get("name") or run["dir"].resolve().name,
        "cfg": cfg, "env": env, "last": last, "total_epochs": total, "epochs_done": last["epoch"],
        "state": state or ("finished" if not partial else "incomplete"), "partial": partial,
        "bad_lines": run["bad_lines"], "figures": figures, "figure_notes": figure_notes,
        "plots": make_plots(metrics, run["quality"]),
        "config_rows": _rows(cfg, CONFIG_ROWS), "extra_rows": extra,
        "hardware_rows": [
            ("Device", f"{fmt(env.get('device'))} ({fmt(env.get('device_name'))})"),
            ("World size (processes)", fmt(cfg.get("world_size", last.get("world_size")))),
            ("Nodes", fmt(env.get("num_nodes"))), ("Host", fmt(env.get("hostname"))),
            ("Platform", fmt(env.get("platform"))),
            ("Software", f"gan_dist {fmt(env.get('gan_dist'))}, Python {fmt(env.get('python'))}, "
                         f"torch {fmt(env.get('torch'))}, accelerate {fmt(env.get('accelerate'))}"),
        ],
        "throughput_rows": [
            ("Epochs completed", f"{last['epoch']} of {fmt(total)}"),
            ("Total training time", duration(total_seconds)),
            ("Mean time per epoch", f"{fmt(sum(seconds) / len(seconds), '.2f')} s" if seconds else "—"),
            ("Mean throughput", f"{fmt(sum(ips) / len(ips), ',.0f')} images/s" if ips else "—"),
            ("Optimiser steps", fmt(sum(r.get("steps", 0) or 0 for r in metrics) or None, ",")),
        ],
        "arch": [(name.capitalize(), [x.get("layer", "?") if isinstance(x, dict) else str(x)
                                      for x in arch.get(name) or []], params.get(name))
                 for name in ("generator", "discriminator")],
        "quality": run["quality"], "ln2": LN2,
        "k": cfg.get("k_disc", 1), "loss_kind": cfg.get("loss", "nonsaturating"),
    }


# --- rendering ------------------------------------------------------------------------------
def _math_extension():
    """Jinja extension: template source may write \\( inline \\) and \\[ display \\] math.
    Only template text is rewritten, never values from the run or the user."""
    from jinja2.ext import Extension

    pattern = re.compile(r"\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)

    class MathExtension(Extension):
        def preprocess(self, source, name, filename=None):
            return pattern.sub(lambda m: "{{ math(%r, %s) }}" % (
                " ".join((m[1] or m[2]).split()), m[2] is not None), source)

    return MathExtension


def math_markup(tex: str, display: bool = False):
    from markupsafe import Markup

    from gan_dist.report.mathsvg import render_math, simple_html

    html = None if display else simple_html(tex)
    if html is not None:
        return Markup('<span class="m">{}</span>').format(Markup(html))
    img = render_math(tex, 12.0 if display else 10.5)
    tag = Markup('<img class="math" src="{}" alt="" style="width:{}pt;height:{}pt;'
                 'vertical-align:-{}pt">').format(img.uri, img.width_pt, img.height_pt, round(img.depth_pt, 2))
    return Markup('<div class="display-math">{}</div>').format(tag) if display else tag


def render_html(run_dir: Path, *, template_dir: Path | None = None, **options: Any) -> str:
    import jinja2

    run = load_run(Path(run_dir))
    dirs = [str(template_dir)] if template_dir else []
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(dirs + [str(PACKAGE_TEMPLATES)]),
        autoescape=True, undefined=jinja2.StrictUndefined, extensions=[_math_extension()],
        trim_blocks=True, lstrip_blocks=True)
    env.globals["math"] = math_markup
    env.filters["fmt"] = fmt
    try:
        return env.get_template("report.html").render(**build_context(run, **options))
    except (jinja2.TemplateError, ValueError) as err:
        raise GanError(f"report template error: {err}; fix the template or drop --template-dir") from None


def make_url_fetcher(roots: Sequence[Path]):
    """A WeasyPrint URL fetcher that serves data: URIs and files under `roots`, nothing else."""
    import weasyprint.urls as wu

    roots = [Path(r).resolve() for r in roots]

    def check(url: str) -> None:
        if url.startswith("data:"):
            return
        parsed = urlparse(url)
        if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
            path = Path(unquote(parsed.path)).resolve()  # resolve(): no escaping through symlinks
            if any(path.is_relative_to(root) for root in roots) and path.is_file():
                return
        log.warning("report: refused to load %s (only the run and template directories are readable)", url)
        raise ValueError(f"refused to load {url}: outside the run and template directories")

    if hasattr(wu, "URLFetcher"):  # WeasyPrint >= 66: a fetcher class
        class RestrictedFetcher(wu.URLFetcher):
            def fetch(self, url, headers=None):
                check(url)
                return super().fetch(url, headers)

        return RestrictedFetcher()

    def fetcher(url: str, timeout: int = 10, ssl_context=None):  # older WeasyPrint: a function
        check(url)
        return wu.default_url_fetcher(url, timeout=timeout, ssl_context=ssl_context)

    return fetcher


def _check_output(path: Path, suffix: str, replaceable: Path, force: bool) -> Path:
    if path.suffix.lower() != suffix:
        raise GanError(f"{path} does not end in {suffix}; name the output FILE{suffix}")
    if not path.parent.is_dir():
        raise GanError(f"directory {path.parent} does not exist; create it or choose another output")
    if path.exists() and not force and path.resolve() != replaceable.resolve():
        raise GanError(f"{path} already exists; choose another name or pass --force to replace it")
    return path


def render_report(run_dir: Path, output: Path | None = None, *, html: Path | None = None,
                  title: str | None = None, author: str | None = None,
                  student_id: str | None = None, course: str | None = None,
                  epochs: Sequence[int] | str | None = None, template_dir: Path | None = None,
                  force: bool = False) -> Path:
    """Render RUN_DIR's report to `output` (default RUN_DIR/report.pdf); return its path.

    Only RUN_DIR/report.pdf (and report.html) are replaced without --force."""
    run_dir = Path(run_dir)
    if isinstance(epochs, str):
        epochs = list(parse_epoch_list(epochs, "--epochs")) if epochs else None
    if template_dir is not None and not Path(template_dir).is_dir():
        raise GanError(f"--template-dir {template_dir} is not a directory; pass a directory of "
                       "templates (report.html, report.css)")
    started = time.perf_counter()
    load_run(run_dir)  # refuse a non-run before judging the output paths
    output = _check_output(Path(output or run_dir / "report.pdf"), ".pdf", run_dir / "report.pdf", force)
    html = _check_output(Path(html), ".html", run_dir / "report.html", force) if html else None
    text = render_html(run_dir, template_dir=template_dir, title=title, author=author,
                       student_id=student_id, course=course, epochs=epochs)
    if html is not None:
        write_atomic(html, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    import weasyprint

    roots = [PACKAGE_TEMPLATES, run_dir] + ([Path(template_dir)] if template_dir else [])
    document = weasyprint.HTML(string=text, base_url=str(run_dir.resolve()) + "/",
                               url_fetcher=make_url_fetcher(roots))
    write_atomic(output, lambda tmp: document.write_pdf(tmp))
    log.info("report: %s in %.1f s", output, time.perf_counter() - started)
    return output
