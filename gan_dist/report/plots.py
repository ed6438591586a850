"""The figures of `gan report` and `gan compare`, as PNG data URIs (matplotlib, no pyplot:
no global backend state). One run is one `Series`; a figure of one series is the coursework
figure, of several an overlay with one colour per run.

Reference lines follow each run's loss (describe.LOSS_FACTS): the values its losses take where
D cannot tell, and 1/2 on D's outputs only for the BCE losses, whose D outputs a probability.
"""

from __future__ import annotations

import base64
import contextlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from gan_dist.report.describe import LOSS_FACTS, LossFacts

DPI = 160


@dataclass
class Series:
    label: str
    metrics: list[dict]
    quality: list[dict] = field(default_factory=list)
    color: str = "C0"
    marks: list[float] = field(default_factory=list)  # epochs where the run was resumed
    loss: str = "nonsaturating"  # config.json's loss: what the losses and D's outputs mean

    @property
    def facts(self) -> LossFacts:
        return LOSS_FACTS.get(self.loss) or LossFacts(self.loss, False, None, None)


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


def _bottom(series: Sequence[Series], keys: Sequence[str], lines: Sequence[float] = ()) -> float:
    """0, or below the lowest value where a loss goes negative (minimax's G, hinge's G)."""
    values = [v for s in series for k in keys for v in _values(s.metrics, k) if math.isfinite(v)]
    low = min([0.0, *values, *lines])
    return 0.0 if low >= 0 else 1.15 * low


def run_label(s: Series, series: Sequence[Series]) -> str:
    """A run's legend entry; its loss added when the runs' losses differ."""
    label = mpl_text(s.label)
    return f"{label} ({mpl_text(s.loss)})" if len({x.loss for x in series}) > 1 else label


def _rest_label(tex: str, value: float) -> str:
    return f"${tex}$" if float(value).is_integer() else f"${tex} \\approx {value:.3f}$"


def rest_values(series: Sequence[Series], key: str) -> list[tuple[float, str]]:
    """The dashed lines of `key` ("d_loss" or "g_loss") on an overlay, as (value, colour): its
    value where D cannot tell, in black when every run's loss puts it at the same value, else
    each run's own in the run's colour; none for a loss whose value there is unknown."""
    which = "d" if key == "d_loss" else "g"
    known = [(getattr(s.facts, f"{which}_rest"), s.color) for s in series]
    known = [(value, color) for value, color in known if value is not None]
    if known and len(known) == len(series) and len({round(v, 9) for v, _ in known}) == 1:
        return [(known[0][0], "k")]
    return known


def disc_reference(series: Sequence[Series]) -> str | None:
    """The reference on D's outputs: 'half' (1/2) where every run's D outputs a probability
    (BCE), 'hinge' (sigmoid(+-1), the margins) where every run is hinge, else None: a
    relativistic D's logits have no fixed level, and mixed losses share no line."""
    if all(s.facts.bce for s in series):
        return "half"
    return "hinge" if all(s.facts.name == "hinge" for s in series) else None


def _rest_lines(ax, series: Sequence[Series], key: str) -> list[float]:
    lines = rest_values(series, key)
    shared = len(lines) == 1 and lines[0][1] == "k"
    facts = series[0].facts
    for i, (value, color) in enumerate(lines):
        tex = getattr(facts, "d_tex" if key == "d_loss" else "g_tex")
        label = (_rest_label(tex, value) + " (equilibrium)" if shared
                 else "each run's equilibrium" if i == 0 else None)
        ax.axhline(value, color=color, ls="--", lw=0.9, label=label)
    return [value for value, _ in lines]


def loss_figure(series: Sequence[Series]) -> str:
    """One run: D and G loss on one axis. Several: D loss | G loss, one colour per run.
    Dashed lines: the values the losses take where D cannot tell (2 ln 2 and ln 2 for the
    coursework's), for losses whose values there are known."""
    with _style():
        if len(series) == 1:
            fig, (ax,) = _figure(height=2.4)
            s = series[0]
            facts = s.facts
            _line(ax, s.metrics, "d_loss", color="C0", label="Discriminator loss")
            _line(ax, s.metrics, "g_loss", color="C1", label="Generator loss")
            lines = []
            if facts.d_rest is not None and facts.d_rest == facts.g_rest:  # rpgan: one line for both
                ax.axhline(facts.d_rest, color="0.3", ls="--", lw=0.9,
                           label=_rest_label(facts.d_tex, facts.d_rest) + " (D and G at equilibrium)")
                lines = [facts.d_rest]
            elif facts.d_rest is not None:
                ax.axhline(facts.d_rest, color="C0", ls="--", lw=0.9,
                           label=_rest_label(facts.d_tex, facts.d_rest) + " (D at equilibrium)")
                ax.axhline(facts.g_rest, color="C1", ls="--", lw=0.9,
                           label=_rest_label(facts.g_tex, facts.g_rest)
                           + (r" (G at equilibrium, $D \equiv 0$)" if facts.name == "hinge" else " (G at equilibrium)"))
                lines = [facts.d_rest, facts.g_rest]
            _marks(ax, series)
            ax.set_ylabel("loss (mean over the epoch)")
            ax.set_ylim(_bottom(series, ("d_loss", "g_loss"), lines), _top(series, ("d_loss", "g_loss"), 2.0) / 1.1)
            _legend_above(ax, 3)
            return _png_uri(fig)
        fig, axes = _figure(2, height=2.8)
        for ax, key, title in zip(axes, ("d_loss", "g_loss"), ("Discriminator loss", "Generator loss")):
            for s in series:
                _line(ax, s.metrics, key, color=s.color, label=run_label(s, series))
            lines = _rest_lines(ax, series, key)
            ax.set_title(title, fontsize=8)
            ax.set_ylim(_bottom(series, (key,), lines), _top(series, (key,), 1.2 * max([0.0, *lines]) + 0.5))
            _legend(ax)
        return _png_uri(fig)


SIGMOID_1 = 1 / (1 + math.exp(-1))  # sigmoid(1): where the hinge loss stops pushing a real score


def _disc_lines(ax, series: Sequence[Series], legend: bool = True) -> None:
    reference = disc_reference(series)
    if reference == "half":
        ax.axhline(0.5, color="k", ls="--", lw=0.9, label=r"$\frac{1}{2}$ (equilibrium)" if legend else r"$\frac{1}{2}$")
    elif reference == "hinge":
        ax.axhline(SIGMOID_1, color="k", ls=":", lw=0.9, label=r"$\sigma(\pm 1)$, the hinge's margins")
        ax.axhline(1 - SIGMOID_1, color="k", ls=":", lw=0.9)


def disc_figure(series: Sequence[Series]) -> str:
    """Mean D output on real images, D(x), and on generated ones, D(G(z)): sigmoid of D's
    logit, a probability for the BCE losses (1/2: cannot tell), a squashed score for the others."""
    bce = all(s.facts.bce for s in series)
    real, fake = (r"$D(x)$", r"$D(G(z))$") if bce else (r"$\sigma(D(x))$", r"$\sigma(D(G(z)))$")
    with _style():
        if len(series) == 1:
            fig, (ax,) = _figure(height=2.1)
            s = series[0]
            _line(ax, s.metrics, "d_real", color="C2", label=real + ", real images")
            _line(ax, s.metrics, "d_fake", color="C3", label=fake + ", generated")
            _disc_lines(ax, series)
            _marks(ax, series)
            ax.set_ylim(0, 1)
            ax.set_ylabel("mean discriminator output" if bce else "mean sigmoid of D's logit")
            _legend_above(ax, 4)
            return _png_uri(fig)
        fig, axes = _figure(2, height=2.5)
        for ax, key, title in zip(axes, ("d_real", "d_fake"), (real + " on real images", fake + " on generated images")):
            for s in series:
                _line(ax, s.metrics, key, color=s.color, label=run_label(s, series))
            _disc_lines(ax, series, legend=False)
            ax.set_ylim(0, 1)
            ax.set_title(title, fontsize=8)
            _legend(ax)
        return _png_uri(fig)


def _logged(series: Sequence[Series], key: str) -> bool:
    return any(math.isfinite(v) for s in series for v in _values(s.metrics, key))


def recipe_figure(series: Sequence[Series]) -> str | None:
    """The gradient penalties (mean term per D step, as added to D's loss) and DiffAugment's p
    per epoch, each panel only when some run logged it; None when no run did. One run: R1 and
    R2 in two colours; several: one colour per run, R1 solid and R2 dashed."""
    penalties = [k for k in ("r1_penalty", "r2_penalty") if _logged(series, k)]
    panels = (["penalties"] if penalties else []) + (["p"] if _logged(series, "augment_p") else [])
    if not panels:
        return None
    one = len(series) == 1
    with _style():
        fig, axes = _figure(len(panels), height=2.2, width=6.6 if len(panels) == 2 else 4.6)
        for ax, panel in zip(axes, panels):
            if panel == "penalties":
                for s in series:
                    for key in penalties:
                        r1 = key == "r1_penalty"
                        if one:
                            _line(ax, s.metrics, key, color="C0" if r1 else "C1", ls="-" if r1 else "--",
                                  label="R1 (real images)" if r1 else "R2 (generated images)")
                        else:
                            _line(ax, s.metrics, key, color=s.color, ls="-" if r1 else "--",
                                  label=run_label(s, series) if r1 or len(penalties) == 1 else None)
                if not one and len(penalties) == 2:
                    ax.plot([], [], color="0.4", ls="--", label="R2 dashed, R1 solid")
                ax.set_ylabel("penalty (mean per D step)")
                ax.set_ylim(bottom=0)
            else:
                for s in series:
                    _line(ax, s.metrics, "augment_p", color="C2" if one else s.color,
                          label=None if one else run_label(s, series))
                ax.set_ylabel("augmentation p (end of epoch)")
                ax.set_ylim(-0.02, 1.02)
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
