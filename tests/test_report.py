"""`gan report`: real PDFs rendered from synthetic run directories, read back with poppler."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from gan_dist.cli import app
from gan_dist.errors import GanError
from gan_dist.report.render import make_url_fetcher, render_report

sys.path.insert(0, str(Path(__file__).parent))
from report_fixtures import metrics_row, write_run  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")
AUTHOR = "<b>Eve</b> & <script>"


def pdf_text(pdf: Path) -> str:
    out = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return " ".join(out.split())


def pdf_images(pdf: Path) -> list[tuple[int, int]]:
    """(width, height) of every image (not soft mask) in the PDF."""
    lines = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True,
                           check=True).stdout.splitlines()[2:]
    return [(int(f[3]), int(f[4])) for f in (line.split() for line in lines) if f[2] == "image"]


def pdf_pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(next(line.split()[1] for line in info.splitlines() if line.startswith("Pages:")))


def assert_no_latex(text: str) -> None:
    for raw in ("$", "\\", "^{", "_{", "frac{", "mathrm", "mathbb"):
        assert raw not in text, f"raw LaTeX {raw!r} in the PDF text"


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("full")
    outside = root / "outside.png"
    Image.new("RGB", (50, 50), "red").save(outside)
    run = write_run(root, state="finished")
    pdf = render_report(run, html=run / "report.html", author=AUTHOR, student_id="12345",
                        course="COMP0000 Machine Learning",
                        title=f'GANs <img src="{outside.as_uri()}">')
    return run, pdf, pdf_text(pdf)


def test_default_output_and_sections(full):
    run, pdf, text = full
    assert pdf == run / "report.pdf" and pdf_pages(pdf) >= 3
    for heading in ("1. Supervised vs unsupervised learning in image classification",
                    "2. Auto-encoder vs generative adversarial network", "(1) Model structure",
                    "(2) Objective functions", "(3) Training procedure", "Algorithm 1",
                    "4. Generated images during training", "5. Loss curves", "6. The run",
                    "Configuration", "Hardware", "Time and throughput", "Networks", "Sample quality",
                    "Jensen–Shannon", "cross-entropy", "clustering", "minimax", "Page 1 of"):
        assert heading in text, heading
    assert "Partial run" not in text
    assert "1,486,352 parameters" in text and "Linear(100, 256) → LeakyReLU(0.2)" in text
    assert "NVIDIA H100 80GB HBM3" in text and "World size (processes) 2" in text
    assert "34 min 10 s" in text  # elapsed_seconds of epoch 100


def test_captions_carry_this_runs_numbers(full):
    _, _, text = full
    assert "Epoch 10 of 100 with 21.12 s — Generator loss: 2.1112, Discriminator loss: 0.7161" in text
    for epoch in (20, 50, 100):
        row = metrics_row(epoch)
        assert (f"Epoch {epoch} of 100 with {row['seconds']:.2f} s — Generator loss: "
                f"{row['g_loss']:.4f}, Discriminator loss: {row['d_loss']:.4f}") in text


def test_images_and_curves_present(full):
    _, pdf, text = full
    sizes = pdf_images(pdf)
    assert sizes.count((242, 242)) == 4  # the four sample grids
    assert len([w for w, _ in sizes if w > 800]) == 3  # loss, D outputs, quality curves
    assert (50, 50) not in sizes  # the file named in the title was never fetched
    assert "Figure 1. Generator and discriminator loss per epoch" in text
    assert "Figure 3." in text


def test_no_raw_latex_and_user_text_literal(full):
    run, _, text = full
    assert_no_latex(text)
    assert AUTHOR in text
    assert 'GANs <img src="file://' in text
    html = (run / "report.html").read_text()
    assert "&lt;b&gt;Eve&lt;/b&gt; &amp; &lt;script&gt;" in html and "<script>" not in html


def test_partial_truncated_run_is_reported_and_marked(tmp_path):
    run = write_run(tmp_path, completed=60, truncated=True, state="running")
    pdf = render_report(run, epochs="10,20,100")
    text = pdf_text(pdf)
    assert "Partial run." in text and "still running" in text and "epochs 1–60 of 100" in text
    assert "1 unreadable line in metrics.jsonl" in text
    assert "Epoch 100 was not reached by this run; showing epoch 50, the nearest saved one." in text
    row = metrics_row(50)
    assert f"Epoch 50 of 100 with {row['seconds']:.2f} s — Generator loss: {row['g_loss']:.4f}" in text
    assert "Epoch 10 of 100 with 21.12 s" in text
    assert pdf_images(pdf).count((242, 242)) == 3
    assert_no_latex(text)


def test_template_dir_cannot_read_outside_files(tmp_path):
    run = write_run(tmp_path)
    outside = tmp_path / "outside.png"
    Image.new("RGB", (50, 50), "red").save(outside)
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "report.html").write_text(
        f'<html><head><link rel="stylesheet" href="file:///etc/hostname"></head><body>'
        f'<p>Custom {{{{ title }}}}</p><img src="{outside.as_uri()}"><img src="file:///etc/passwd">'
        f'<img src="http://example.com/x.png"><img src="samples/epoch_0010.png"></body></html>')
    pdf = render_report(run, template_dir=templates, title="T")
    assert "Custom T" in pdf_text(pdf)
    assert pdf_images(pdf) == [(242, 242)]  # only the run's own file was loaded


def test_url_fetcher_refuses_everything_outside(tmp_path):
    run = write_run(tmp_path)
    fetch = make_url_fetcher([run])
    fetch = getattr(fetch, "fetch", fetch)
    for url in ("file:///etc/passwd", "http://example.com/", f"file://{run}/../../etc/hostname"):
        with pytest.raises(ValueError, match="refused"):
            fetch(url)
    assert fetch((run / "config.json").as_uri())


def test_cli_refuses_non_run_and_missing_metrics(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "no config.json" in result.output and len(result.output.strip().splitlines()) == 1
    (tmp_path / "config.json").write_text("{}")
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "no completed epoch in metrics.jsonl" in result.output
    assert not (tmp_path / "report.pdf").exists()


def test_existing_files_are_not_overwritten(tmp_path):
    run = write_run(tmp_path, quality=False)
    precious = tmp_path / "thesis.pdf"
    precious.write_bytes(b"%PDF precious")
    with pytest.raises(GanError, match="already exists"):
        render_report(run, precious)
    with pytest.raises(GanError, match="does not end in .pdf"):
        render_report(run, run / "metrics.jsonl")
    assert precious.read_bytes() == b"%PDF precious"
    with pytest.raises(GanError, match="--epochs"):
        render_report(run, epochs="ten")


def test_report_module_does_not_import_torch():
    code = ("import sys, gan_dist.report.render, gan_dist.report.mathsvg, gan_dist.report.runs_table, weasyprint, matplotlib.figure; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
