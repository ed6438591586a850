"""TeX-style math for the report, with no LaTeX install and no raw LaTeX reaching the PDF.

Simple inline formulas (symbols, sub/superscripts) become HTML, which is fast to lay out and
searchable; anything else (fractions, sums, ...) becomes an SVG from matplotlib mathtext,
whose glyphs are vector paths, not text. Both use DejaVu Serif, the report's body font.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass
from functools import lru_cache
from html import escape

_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|\s+|.")
_SYMBOLS = {"theta": "θ", "phi": "φ", "mu": "μ", "beta": "β", "ldots": "…", "{": "{", "}": "}",
            ",": "\u2009", "|": "‖", "cdot": "·", "infty": "∞", "nabla": "∇", "mid": " | ",
            "sim": " ∼ ", "in": " ∈ ", "approx": " ≈ ", "ge": " ≥ ", "le": " ≤ ", "gamma": "γ",
            "sigma": "σ", "equiv": " ≡ ", "pm": "±", "times": " × "}
_UPRIGHT = {"log", "ln", "exp", "JSD", "max"}


class _NotSimple(Exception):
    pass


def _parse(toks: list[str], stop: str | None = None, upright: bool = False) -> str:
    out: list[str] = []
    while toks:
        t = toks.pop(0)
        if t == stop:
            return "".join(out)
        if t == "{":
            out.append(_parse(toks, "}", upright))
        elif t in ("_", "^"):
            arg = toks.pop(0)
            arg = _parse(toks, "}", upright) if arg == "{" else _parse([arg], None, upright)
            tag = "sub" if t == "_" else "sup"
            out.append(f"<{tag}>{arg}</{tag}>")
        elif t == r"\mathrm":
            if toks.pop(0) != "{":
                raise _NotSimple
            out.append(_parse(toks, "}", upright=True))
        elif t[0] == "\\" and t[1:] in _UPRIGHT:
            out.append(t[1:] + ("" if toks[:1] == ["("] else "\u2009"))
        elif t[0] == "\\" and t[1:] in _SYMBOLS:
            out.append(_SYMBOLS[t[1:]])
        elif t[0] == "\\" or t == "}":
            raise _NotSimple
        elif t.isspace():
            continue
        elif t.isalpha():
            out.append(t if upright else f"<i>{t}</i>")
        elif t in "=<>+":
            out.append(f" {escape(t)} ")
        elif t == "-":
            unary = not out or out[-1].rstrip()[-1:] in ("", "(", "[", "{", ",", "=")
            out.append("−" if unary else " − ")
        else:
            out.append(", " if t == "," else escape(t))
    if stop:
        raise _NotSimple  # unbalanced braces
    return "".join(out)


def simple_html(tex: str) -> str | None:
    """HTML for a formula made only of symbols and sub/superscripts; None for anything else."""
    try:
        return _parse(_TOKEN.findall(tex)).strip()
    except (_NotSimple, IndexError):
        return None


_SIZE_RE = re.compile(r'<svg[^>]*?width="([\d.]+)pt" height="([\d.]+)pt"')
_NOISE_RE = re.compile(r"<metadata>.*?</metadata>|<!--.*?-->", re.S)


@dataclass(frozen=True)
class MathImage:
    uri: str  # data:image/svg+xml;base64,...
    width_pt: float
    height_pt: float
    depth_pt: float  # how far the baseline sits above the image's bottom edge


@lru_cache(maxsize=512)
def render_math(tex: str, size_pt: float = 11.0) -> MathImage:
    """Render one formula (without the surrounding $...$) to an SVG data URI."""
    import matplotlib
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties

    buf = io.BytesIO()
    rc = {"mathtext.fontset": "dejavuserif", "svg.fonttype": "path", "savefig.transparent": True,
          "svg.hashsalt": "gan_dist"}  # stable ids: same formula, same bytes
    with matplotlib.rc_context(rc):
        try:
            depth = mathtext.math_to_image(f"${tex}$", buf, prop=FontProperties(size=size_pt),
                                           dpi=72, format="svg")
        except ValueError as err:  # a template author's typo: say which formula
            raise ValueError(f"cannot typeset formula {tex!r}: {err}") from None
    svg = _NOISE_RE.sub("", buf.getvalue().decode())
    match = _SIZE_RE.search(svg)
    width, height = (float(match[1]), float(match[2])) if match else (0.0, 0.0)
    uri = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    return MathImage(uri, width, height, float(depth or 0.0))
