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
from gan_dist.report.describe import figure_epochs
from gan_dist.report.render import make_url_fetcher, render_report
from gan_dist.report.rundata import load_run

sys.path.insert(0, str(Path(__file__).parent))
from helpers import assert_no_latex, pdf_images, pdf_pages, pdf_rows, pdf_text
from report_fixtures import (
    CLASSES,
    dcgan_config,
    events_stop_resume,
    hostile_template,
    metrics_row,
    write_run,
)

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")
AUTHOR = "<b>Eve</b> & <script>"


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
                    "Dataset", "Configuration", "Hardware", "Time and throughput", "Networks",
                    "Sample quality",
                    "Jensen–Shannon", "cross-entropy", "clustering", "minimax", "Page 1 of"):
        assert heading in text, heading
    assert "Partial run" not in text
    assert "1,486,352 parameters" in text and "Linear(100, 256) → LeakyReLU(0.2)" in text
    assert "NVIDIA H100 80GB HBM3" in text and "World size (processes) 2" in text
    assert "34 min 10 s" in text  # elapsed_seconds of epoch 100
    # the coursework default keeps the coursework's wording about its networks and data
    assert "MLP networks" in text and "multilayer perceptrons" in text and "the digit 0–9" in text
    assert "Training images 60,000" in text and "Resolution 28 × 28 px" in text
    assert "Stops and resumes" not in text  # no events.jsonl: an old run


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
    templates = hostile_template(tmp_path, "report.html", (
        '<html><head><link rel="stylesheet" href="file:///etc/hostname"></head><body>'
        '<p>Custom {{ title }}</p><img src="OUTSIDE"><img src="file:///etc/passwd">'
        '<img src="http://example.com/x.png"><img src="samples/epoch_0010.png"></body></html>'))
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




@pytest.fixture(scope="module")
def dcgan(tmp_path_factory) -> tuple[Path, str, str, list[str]]:
    """A conditional DCGAN run with EMA, stopped by Slurm and resumed on 2 nodes (newer contract)."""
    run = write_run(tmp_path_factory.mktemp("dcgan"), name="dcgan", config=dcgan_config(),
                    events=events_stop_resume(), grid_rows=10, state="finished",
                    quality_features="folder:/data/pets-classifier")
    pdf = render_report(run, html=run / "report.html")
    return pdf, pdf_text(pdf), (run / "report.html").read_text(), pdf_rows(pdf)


def test_other_networks_are_described_as_trained_never_as_an_mlp(dcgan):
    _, text, _, rows = dcgan
    assert "DCGAN networks (class-conditional, EMA generator)" in text
    for mlp_words in ("MLP", "multilayer perceptron", "fully connected", "digit 0–9"):
        assert mlp_words not in text, mlp_words
    assert "transposed convolutions" in text and "projection" in text
    # layer tables: layer, output shape, parameters; totals from config.json
    assert "ConvTranspose2d(100, 256, 4, 1, 0) (B, 256, 4, 4) 409,600" in rows
    assert "Generator in total 3,576,704" in rows and "Discriminator in total 2,765,568" in rows
    assert "Resolution 32 × 32 px" in text and "Channels 3 (RGB)" in text
    assert "Training images 5,000" in text and "one of its 10 classes" in text
    assert "drawn by the EMA generator" in text and "half-life of 10 thousand images" in text
    assert "Radford" in text and "Miyato" in text
    assert_no_latex(text)


def test_conditional_grids_are_labelled_by_class_and_user_text_is_literal(dcgan):
    pdf, text, html, _ = dcgan
    assert pdf_images(pdf).count((242, 302)) == 4  # 10 rows (one per class) x 8, at 10/20/50/100
    assert text.startswith("Generative Adversarial Networks on Pets <i>folder</i>")
    assert "Each row is one class, named at its left." in text
    assert "<script>cat</script>" in text  # in the dataset table, as written
    assert html.count("&lt;script&gt;cat&lt;/script&gt;") == 1 + 4  # the table, each grid's row
    assert "<script>" not in html and "<i>folder</i>" not in html
    assert all(name in text for name in CLASSES if "<" not in name)


def test_stops_and_resumes_are_shown_as_a_timeline(dcgan):
    _, text, _, rows = dcgan
    assert "2 sessions (1 stop, 1 resume), on 2 processes on 1 node and 4 processes on 2 nodes." in text
    assert "2023-11-14 22:13 0 min 00 s Started at the beginning 2×1 —" in rows
    assert "2023-11-14 22:27 13 min 50 s Stopped epoch 41, step 120 2×1" in rows  # reason wraps
    assert "SIGUSR1 (Slurm time limit)" in text
    assert "2023-11-14 23:20 1 h 06 min Resumed epoch 41, step 120 4×2 —" in rows
    assert "2023-11-14 23:41 1 h 28 min Finished after epoch 100 4×2 —" in rows
    assert "dotted lines where the run was resumed" in text
    # quality measured with the run's own classifier, said so
    assert "a Pets <i>folder</i> classifier trained by this project" in text


def test_a_6_epoch_run_shows_its_own_saved_epochs(tmp_path):
    run = write_run(tmp_path, epochs=6, sample_epochs=(2, 4), quality=False)
    text = pdf_text(render_report(run))
    for epoch in (2, 4, 6):
        row = metrics_row(epoch)
        assert (f"Epoch {epoch} of 6 with {row['seconds']:.2f} s — Generator loss: {row['g_loss']:.4f}, "
                f"Discriminator loss: {row['d_loss']:.4f}") in text
    assert "nearest" not in text and "Sample quality" not in text
    text = pdf_text(render_report(run, epochs="4"))  # --epochs still chooses
    assert "Epoch 4 of 6" in text and "Epoch 2 of 6" not in text and "Epoch 6 of 6" not in text


def test_many_saved_grids_are_thinned_with_a_note(tmp_path):
    run = load_run(write_run(tmp_path, epochs=100, sample_epochs=range(5, 101, 5), quality=False))
    assert figure_epochs(None, run) == ([10, 20, 50, 100], [
        "This run saved 20 sample grids; showing epochs 10, 20, 50, 100. Choose others with --epochs."])
    run["samples"] = {e: p for e, p in run["samples"].items() if e % 10 != 0}  # 5, 15, ..., 95
    shown, _ = figure_epochs(None, run)  # no coursework epoch saved: 8 spread evenly, ends kept
    assert shown == [5, 15, 35, 45, 55, 65, 85, 95]


def test_report_and_compare_do_not_import_torch(tmp_path):
    """Render both documents in a fresh interpreter and check torch never got imported."""
    a, b = write_run(tmp_path, name="a"), write_run(tmp_path, name="b", world_size=4, speed=1.8)
    code = ("import sys; from gan_dist.report.render import render_report; "
            "from gan_dist.report.compare import render_compare; import gan_dist.report.runs_table; "
            f"render_report({str(a)!r}); render_compare([{str(a)!r}, {str(b)!r}], {str(tmp_path / 'c.pdf')!r}); "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
    assert (a / "report.pdf").stat().st_size > 0 and (tmp_path / "c.pdf").stat().st_size > 0
