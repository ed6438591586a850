"""The figures of `gan report` and `gan compare`, as PNG data URIs (matplotlib, no pyplot:
no global backend state). One run is one `Series`; a figure of one series is the coursework
figure, of several an overlay with one colour per run.
"""

from __future__ import annotations

import base64
import contextlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from gan_dist.report.describe import LN2

DPI = 160


@dataclass
class Series:
    label: str
    metrics: list[dict]
    quality: list[dict] = field(default_factory=list)
    color: str = "C0"
    marks: list[float] = field(default_factory=list)  # epochs where the run was resumed


def mpl_text(text: str) -> str:
    """User text for a matplotlib label: a '$' would otherwise start mathtext."""
    return str(text).replace("$", r"\$")


@contextlib.contextmanager
def _style():
    import matplotlib

    with matplotlib.rc_context({"font.size": 8, "mathtext.fontset": "cm",
                                "axes.spines.top": False, "axes.spines.right": False}):
        yield


def _figure(ncols: int = 1, height: float = 2.6, xlabel: str = "epoch", width: float = 6.6):
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs and processes are whole
    return fig, axes


def _png_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _values(rows: Sequence[dict], key: str) -> list[float]:
    out = []
    for r in rows:
        v = r.get(key)
        out.append(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan)
    return out


def _line(ax, rows: Sequence[dict], key: str, **style) -> bool:
    """One curve of `key` over the rows' epochs; False (nothing drawn) when no row has it."""
    ys = _values(rows, key)
    if all(math.isnan(y) for y in ys):
        return False
    marker = "o" if len(rows) < 30 else None
    ax.plot([r["epoch"] for r in rows], ys, marker=marker, ms=3, lw=1.2, **style)
    return True


def _marks(ax, series: Sequence[Series]) -> None:
    labelled = False
    for s in series:
        for x in s.marks:
            ax.axvline(x, color="0.5", ls=":", lw=0.9, label=None if labelled else "resumed")
            labelled = True


def _legend(ax, ncols: int = 1, loc: str = "best") -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(ncols=ncols, loc=loc, frameon=False, fontsize=7)


def _legend_above(ax, ncols: int) -> None:
    """Above the axes, where it can never hide a curve."""
    ax.legend(ncols=ncols, loc="lower left", bbox_to_anchor=(0, 1.0), frameon=False, fontsize=7,
              borderaxespad=0.2)


def _top(series: Sequence[Series], keys: Sequence[str], floor: float) -> float:
    values = [v for s in series for k in keys for v in _values(s.metrics, k) if math.isfinite(v)]
    return max([floor, *values]) * 1.25


def loss_figure(series: Sequence[Series]) -> str:
    """One run: D and G loss on one axis. Several: D loss | G loss, one colour per run.
    Dashed lines: the equilibrium values 2 ln 2 and ln 2."""
    with _style():
        if len(series) == 1:
            fig, (ax,) = _figure(height=2.4)
            s = series[0]
            _line(ax, s.metrics, "d_loss", color="C0", label="Discriminator loss")
            _line(ax, s.metrics, "g_loss", color="C1", label="Generator loss")
            ax.axhline(2 * LN2, color="C0", ls="--", lw=0.9, label=r"$2\ln 2 \approx 1.386$ (D at equilibrium)")
            ax.axhline(LN2, color="C1", ls="--", lw=0.9, label=r"$\ln 2 \approx 0.693$ (G at equilibrium)")
            _marks(ax, series)
            ax.set_ylabel("loss (mean over the epoch)")
            ax.set_ylim(0, _top(series, ("d_loss", "g_loss"), 2.0) / 1.1)
            _legend_above(ax, 3)
            return _png_uri(fig)
        fig, axes = _figure(2, height=2.8)
        for ax, key, eq, title in zip(axes, ("d_loss", "g_loss"), (2 * LN2, LN2),
                                      ("Discriminator loss", "Generator loss")):
            for s in series:
                _line(ax, s.metrics, key, color=s.color, label=mpl_text(s.label))
            ax.axhline(eq, color="k", ls="--", lw=0.9,
                       label=r"$2\ln 2$ (equilibrium)" if key == "d_loss" else r"$\ln 2$ (equilibrium)")
            ax.set_title(title, fontsize=8)
            ax.set_ylim(0, _top(series, (key,), 1.2 * eq + 0.5))
            _legend(ax)
        return _png_uri(fig)


def disc_figure(series: Sequence[Series]) -> str:
    """Mean D output on real images, D(x), and on generated ones, D(G(z)), against 1/2."""
    with _style():
        if len(series) == 1:
            fig, (ax,) = _figure(height=2.1)
            s = series[0]
            _line(ax, s.metrics, "d_real", color="C2", label=r"$D(x)$, real images")
            _line(ax, s.metrics, "d_fake", color="C3", label=r"$D(G(z))$, generated")
            ax.axhline(0.5, color="k", ls="--", lw=0.9, label=r"$\frac{1}{2}$ (equilibrium)")
            _marks(ax, series)
            ax.set_ylim(0, 1)
            ax.set_ylabel("mean discriminator output")
            _legend_above(ax, 4)
            return _png_uri(fig)
        fig, axes = _figure(2, height=2.5)
        for ax, key, title in zip(axes, ("d_real", "d_fake"),
                                  (r"$D(x)$ on real images", r"$D(G(z))$ on generated images")):
            for s in series:
                _line(ax, s.metrics, key, color=s.color, label=mpl_text(s.label))
            ax.axhline(0.5, color="k", ls="--", lw=0.9, label=r"$\frac{1}{2}$")
            ax.set_ylim(0, 1)
            ax.set_title(title, fontsize=8)
            _legend(ax)
        return _png_uri(fig)


def speed_figure(series: Sequence[Series]) -> str:
    """Images per second and seconds per epoch, one colour per run."""
    with _style():
        fig, axes = _figure(2, height=2.4)
        for ax, key, ylabel in zip(axes, ("images_per_second", "seconds"),
                                   ("images per second", "seconds per epoch")):
            for s in series:
                _line(ax, s.metrics, key, color=s.color, label=mpl_text(s.label))
            ax.set_ylabel(ylabel)
            ax.set_ylim(bottom=0)
        _legend(axes[0])
        return _png_uri(fig)


def _in_space(rows: Sequence[dict], feature: str | None) -> list[dict]:
    return [r for r in rows if feature is None or str(r.get("features") or "digit-classifier") == feature]


def quality_figure(series: Sequence[Series], fd_label: str = "Fréchet distance", feature: str | None = None) -> str | None:
    """FD (left) and precision / recall (right) per evaluated epoch, of the rows measured in
    `feature` (None: all); None when nothing was evaluated. One run also shows the confident
    share; several runs: one colour per run, precision solid and recall dashed."""
    series = [Series(s.label, s.metrics, _in_space(s.quality, feature), s.color, s.marks) for s in series]
    series = [s for s in series if s.quality]
    if not series:
        return None
    with _style():
        fig, (a1, a2) = _figure(2, height=2.2)
        for s in series:
            _line(a1, s.quality, "fd", color="C4" if len(series) == 1 else s.color,
                  label=None if len(series) == 1 else mpl_text(s.label))
        a1.set_ylabel(f"{fd_label} (lower is better)")
        a1.set_ylim(bottom=0)
        if len(series) == 1:
            for key, color in (("precision", "C0"), ("recall", "C1"), ("confident", "C2")):
                _line(a2, series[0].quality, key, color=color, label=key)
        else:
            for i, s in enumerate(series):
                _line(a2, s.quality, "precision", color=s.color, label=mpl_text(s.label) + ", precision")
                _line(a2, s.quality, "recall", color=s.color, ls="--",
                      label="recall (dashed)" if i == 0 else None)
            _legend(a1)
        a2.set_ylim(0, 1.05)
        _legend(a2, loc="lower right")
        return _png_uri(fig)


def scaling_figure(points: Sequence[dict]) -> str:
    """Images/s against processes, with ideal linear scaling from the smallest world size."""
    with _style():
        fig, (ax,) = _figure(height=2.1, xlabel="processes (world size)", width=4.6)  # shown at 70%
        xs = [p["world_size"] for p in points]
        ys = [p["images_per_second"] for p in points]
        ax.plot(xs, ys, color="C0", marker="o", ms=4, label="measured (median over epochs)")
        ax.plot(xs, [ys[0] * x / xs[0] for x in xs], color="0.4", ls="--", lw=0.9,
                label="ideal (linear from the smallest)")
        ax.set_xticks(xs)
        ax.set_ylabel("images per second")
        ax.set_ylim(bottom=0)
        _legend(ax, loc="upper left")
        return _png_uri(fig)


def modes_figure(series: Sequence[Series]) -> str | None:
    """Stacked MNIST: modes of 1,000 (left) and KL(p ‖ uniform) (right) per evaluated epoch, the
    real stacked images' figures dashed; None when no row counted them."""
    series = [Series(s.label, s.metrics, [r for r in s.quality if r.get("modes_of")], s.color, s.marks) for s in series]
    series = [s for s in series if s.quality]
    if not series:
        return None
    with _style():
        fig, (a1, a2) = _figure(2, height=2.2)
        for ax, key, real_key, ylabel in ((a1, "modes", "real_modes", "modes (of 1,000)"),
                                          (a2, "kl_uniform", "real_kl_uniform", "KL(p ‖ uniform), lower is better")):
            for i, s in enumerate(series):
                color = "C4" if len(series) == 1 else s.color
                _line(ax, s.quality, key, color=color, label=mpl_text(s.label) if len(series) > 1 else "generated")
                real = [v for v in _values(s.quality, real_key) if math.isfinite(v)]
                if real:
                    ax.axhline(real[-1], color=color, ls="--", lw=0.9,
                               label="real stacked images" if i == 0 else None)
            ax.set_ylabel(ylabel)
            ax.set_ylim(bottom=0)
        a1.set_ylim(0, 1050)
        _legend(a1, loc="lower right")
        return _png_uri(fig)


def quality_plots(series: Sequence[Series], features: Sequence[str]) -> list[dict]:
    """One FD / precision-recall figure per feature space the runs were measured in, each with
    its caption (the protocol of inception rows included)."""
    from gan_dist.report.describe import quality_caption, rows_in

    out = []
    for feature in features:
        url = quality_figure(series, "FID" if feature == "inception" else "Fréchet distance", feature=feature)
        if url:
            rows = [r for s in series for r in rows_in(s.quality, feature)]
            out.append({"feature": feature, "url": url, "caption": quality_caption(feature, rows, runs=len(series))})
    return out
