"""The documentation holds together: every relative link and anchor resolves, every docs/ page is
reachable from the README, the quick start's two commands are there, and docs/environment.md names
every variable gan_dist reads."""

import re
from pathlib import Path

import pytest

from gan_dist.environment import VARIABLES

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "benchmarks" / "RESULTS.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _prose(text: str) -> list[str]:
    """Lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, -N for repeats."""
    seen: dict[str, int] = {}
    anchors = set()
    for line in _prose(page.read_text(encoding="utf-8")):
        match = re.match(r"#{1,6} (.+)", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_and_anchors_resolve(page):
    broken = []
    for line in _prose(page.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{target}: no such file")
            elif anchor and (dest.is_dir() or anchor not in _anchors(dest)):
                broken.append(f"{target}: no heading with anchor #{anchor}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def test_every_docs_page_is_linked_from_the_readme():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in (REPO / "docs").glob("*.md") if f"](docs/{p.name})" not in readme]
    assert not missing, f"README.md's Documentation section lacks {missing}"
    assert "](benchmarks/RESULTS.md)" in readme


def test_the_quick_start_keeps_its_two_commands():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert ("python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/gan train --dataset mnist-sample "
            "--name quickstart && .venv/bin/gan report runs/quickstart\n") in readme
    assert "\nbash scripts/test.sh\n" in readme


def test_environment_doc_names_every_variable_read():
    doc = (REPO / "docs" / "environment.md").read_text(encoding="utf-8")
    missing = [name for name in VARIABLES if f"`{name}`" not in doc]
    assert not missing, f"docs/environment.md does not describe {missing}"
