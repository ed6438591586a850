"""Templates in, files out, for `gan report` and `gan compare`: the Jinja environment (with
typeset math), output-path checks, and the PDF written through WeasyPrint with a URL fetcher
that can read only the run and template directories. Torch-free.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from gan_dist.atomic import write_atomic
from gan_dist.errors import GanError
from gan_dist.report.describe import fmt

PACKAGE_TEMPLATES = Path(__file__).parent / "templates"
log = logging.getLogger(__name__)


# --- templates -------------------------------------------------------------------------------
def _math_extension():
    """Jinja extension: template source may write \\( inline \\) and \\[ display \\] math.
    Only template text is rewritten, never values from the run or the user."""
    from jinja2.ext import Extension

    pattern = re.compile(r"\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)

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


def render_template(name: str, context: dict[str, Any], template_dir: Path | None = None) -> str:
    """Render a shipped template (or its override in `template_dir`); every value autoescaped."""
    import jinja2

    dirs = [str(template_dir)] if template_dir else []
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(dirs + [str(PACKAGE_TEMPLATES)]),
        autoescape=True, undefined=jinja2.StrictUndefined, extensions=[_math_extension()],
        trim_blocks=True, lstrip_blocks=True)
    env.globals["math"] = math_markup
    env.filters["fmt"] = fmt
    try:
        return env.get_template(name).render(**context)
    except (jinja2.TemplateError, ValueError, TypeError, AttributeError) as err:  # a template's bug
        raise GanError(f"{name} template error: {err}; fix the template or drop --template-dir") from None


def check_template_dir(template_dir: Path | None) -> None:
    if template_dir is not None and not Path(template_dir).is_dir():
        raise GanError(f"--template-dir {template_dir} is not a directory; pass a directory of "
                       "templates (report.html, report.css, compare.html, ...)")


# --- loading: nothing outside the run and template directories ------------------------------
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


# --- writing ---------------------------------------------------------------------------------
def check_output(path: Path, suffix: str, force: bool, replaceable: Path | None = None) -> Path:
    """Refuse a wrong suffix, a missing folder, or an existing file (unless --force, or it is
    the file this command owns, e.g. RUN_DIR/report.pdf)."""
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise GanError(f"{path} does not end in {suffix}; name the output FILE{suffix}")
    if not path.parent.is_dir():
        raise GanError(f"directory {path.parent} does not exist; create it or choose another output")
    if path.is_dir():
        raise GanError(f"{path} is a directory; name the output FILE{suffix}")
    owned = replaceable is not None and path.resolve() == Path(replaceable).resolve()
    if path.exists() and not force and not owned:
        raise GanError(f"{path} already exists; choose another name or pass --force to replace it")
    return path


def publish(html_text: str, pdf: Path, *, html: Path | None, roots: Sequence[Path],
            base_url: Path) -> None:
    """Lay out the PDF first, then write the HTML and the PDF: a failure writes nothing."""
    import weasyprint

    document = weasyprint.HTML(string=html_text, base_url=str(Path(base_url).resolve()) + "/",
                               url_fetcher=make_url_fetcher(roots))
    data = document.write_pdf()
    if html is not None:
        write_atomic(html, html_text)
    write_atomic(pdf, data)
