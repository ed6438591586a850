"""`gan report` and `gan compare` of runs trained with the modern recipe (issue 26): each run's
loss, its values where D cannot tell, the penalties, packing and augmentation with their
references, the residual networks' layer tables, read back from real PDFs; the coursework run
keeps its words and gains none of these."""

from __future__ import annotations

import math
import re
import shutil
import sys
from pathlib import Path

import pytest

from gan_dist.report.compare import render_compare
from gan_dist.report.describe import LN2, layer_text
from gan_dist.report.plots import Series, disc_reference, rest_values, run_label
from gan_dist.report.render import render_report

sys.path.insert(0, str(Path(__file__).parent))
from helpers import assert_no_latex, pdf_images, pdf_rows, pdf_text
from report_fixtures import (
    hinge_config,
    hinge_metrics,
    resnet_architecture,
    rpgan_config,
    rpgan_metrics,
    write_run,
)

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")
RECIPE_WORDS = ("relativistic", "hinge", "Gradient penalties", "PacGAN", "DiffAugment", "R3GAN", "Regularisation",
                "sigmoid of D's score", "Huang", "Mescheder", "Karras", "Zhao", "Lim and Ye", "Geometric GAN",
                "Jolicoeur", "ADA", "penalt", "packs")


def joined(text: str) -> str:
    """Words WeasyPrint hyphenated at a line end, whole again."""
    return text.replace("\u2010 ", "")


def recipe_run(root: Path, name: str, config: dict, update) -> Path:
    return write_run(root, name=name, epochs=20, sample_epochs=(5, 10, 15, 20), config=config,
                     metrics_update=update, quality=False, world_size=1, state="finished")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("recipe")
    return {"course": write_run(root, name="course", state="finished"),
            "rpgan": recipe_run(root, "rp", rpgan_config("rp"), rpgan_metrics),
            "hinge": recipe_run(root, "hi", hinge_config("hi"), hinge_metrics)}


@pytest.fixture(scope="module")
def reports(runs) -> dict[str, tuple[str, list[str], Path]]:
    out = {}
    for kind, run in runs.items():
        pdf = render_report(run)
        out[kind] = (joined(pdf_text(pdf)), pdf_rows(pdf), pdf)
    return out


def test_coursework_report_keeps_its_words_and_gains_none_of_the_recipe(reports):
    text, _, pdf = reports["course"]
    for words in ("The losses logged below are LD = −log D(x) − log(1 − D(G(z))) and LG = −log D(G(z)), "
                  "averaged over each epoch.",
                  "dashed lines mark the equilibrium values 2ln 2 (D) and ln 2 (G).",
                  "the losses towards 2ln 2 and ln 2.", "Figure 2. Mean discriminator output on real images",
                  "Figure 3. Fréchet distance", "Generative Adversarial Nets. NeurIPS 2014."):
        assert words in text, words
    for words in RECIPE_WORDS:
        assert words not in text, words
    assert len([w for w, _ in pdf_images(pdf)]) == 4 + 3  # grids + loss, D outputs, quality: no recipe figure
    assert_no_latex(text)


def test_rpgan_report_states_its_loss_and_where_it_rests(reports):
    text, _, _ = reports["rpgan"]
    last = rpgan_metrics(20)
    for words in (
            "residual (R3GAN-style) networks (EMA generator), rpgan loss",
            "This run used the relativistic pairing loss instead (RpGAN; Jolicoeur-Martineau, 2018), the loss of "
            "R3GAN (Huang et al., 2024).",
            "With softplus(t) = log(1 + et), the losses logged below are LD = softplus(D(G(z)) − D(x)) and "
            "LG = softplus(D(x) − D(G(z))), averaged over the pairs of each batch",
            "In the logged losses this point reads D(x) − D(G(z)) = 0 and LD = LG = ln 2 ≈ 0.693.",
            f"At epoch 20 this run had LD = {last['d_loss']:.4f}, LG = {last['g_loss']:.4f}, and mean sigmoids of "
            f"D's scores σ(D(x)) = {last['d_real']:.3f} and σ(D(G(z))) = {last['d_fake']:.3f} (the gradient "
            "penalties of (4) are logged apart and not included)",
            "descended its own rpgan losses: LD plus the gradient penalties for D and LG for G",
            "the dashed line marks ln 2, the value of both where D cannot tell (without the gradient penalties)",
            "only the gap between them does. Where D cannot tell they meet, at whatever height",
            "both losses move towards ln 2."):
        assert words in text, words
    # the coursework's BCE formulas and 1/2 are not claimed for this run
    for words in ("The losses logged below are LD = −log", "2ln 2 (D)", "D(x) is near 1", "Mean discriminator output"):
        assert words not in text, words
    assert_no_latex(text)


def test_rpgan_report_describes_the_residual_networks_penalties_and_ada(reports):
    text, _, pdf = reports["rpgan"]
    last = rpgan_metrics(20)
    for words in (
            "residual convolutional networks without normalisation, after R3GAN (Huang et al., 2024)",
            "a learned basis at its bottom, one 7 × 7 map per channel", "fixed low-pass filter ([1, 2, 1]",
            "every block starts as the identity", "there is no BatchNorm anywhere",
            "Here the stage nearest the image has 8 channels", "with 1 block per stage.",
            "the samples come from an exponential moving average",
            "(4) Regularisation and augmentation in this run",
            "R1 = (γ/2) E‖∇xD(x)‖2 on real images, with γ = 0.1, and R2, the same on generated images, with γ = 0.1.",
            "added to D's loss at every D step", "are not part of the LD in the text and figures; figure 3 plots them.",
            f"In epoch 20, the last, R1 averaged {last['r1_penalty']:.4g} and R2 {last['r2_penalty']:.4g}.",
            "DiffAugment (Zhao et al., 2020): translation (shifts of up to 1/8 of the side).",
            "set by ADA's controller (Karras et al., 2020)",
            "the mean sign of the difference D(x) − D(G(z)) over real–generated pairs above the target 0.6",
            "by at most 1 per 500 thousand images", f"After epoch 20, p was {last['augment_p']:.3f} (figure 3).",
            "Figure 3. Left: the gradient penalties as added to D's loss",
            "Right: DiffAugment's probability p at the end of each epoch, set by ADA's controller."):
        assert words in text, words
    assert "(here pack against pack)" not in text and "Packing." not in text and "Lazy" not in text
    references = text[text.index("References."):text.index("6. The run")]
    for cited in ("Goodfellow", "The GAN is dead; long live the GAN!", "The relativistic discriminator",
                  "Which Training Methods for GANs do actually Converge?", "Differentiable Augmentation",
                  "Training Generative Adversarial Networks with Limited Data"):
        assert cited in references, cited
    for uncited in ("Radford", "Geometric GAN", "PacGAN", "Analyzing and Improving", "Miyato", "InfoGAN"):
        assert uncited not in references, uncited
    assert len([w for w, _ in pdf_images(pdf) if w > 800]) == 3  # loss, D outputs, penalties and p


def test_rpgan_settings_and_residual_layer_tables(reports):
    text, rows, _ = reports["rpgan"]
    for row in ("Preset resnet-mnist@1", "Loss rpgan", "Augmentation p auto", "ADA target 0.6",
                "DiffAugment translation"):
        assert any(row in r for r in rows), row
    assert "Images per D input" not in text and "Num classes" not in text
    # every residual block is headed as one; the projection head is not a block heading
    assert text.count("Residual block: its input is added to the output of the layers below") == 6
    for row in ("GenerativeBasis(100 → 32 × 7×7) (B, 32, 7, 7) 4,768",
                "Conv2d(64, 64, 3×3, padding 1, groups 4, no bias) (B, 64, 7, 7) 9,216",
                "Resample(16, up, filter [1, 2, 1]) (B, 16, 14, 14) 0",
                "Conv2d(32, 32, 7×7, groups 32, no bias) (B, 32, 1, 1) 1,568", "Flatten (B, 32) 0",
                "Linear(32, 1) (B, 1) 33", "Generator in total 27,144", "Discriminator in total 23,977"):
        assert row in rows, row
    assert "kernel_size" not in text and "stride=(1, 1)" not in text


def test_hinge_pack_report(reports):
    text, rows, _ = reports["hinge"]
    last = hinge_metrics(20)
    for words in (
            "DCGAN networks (EMA generator), hinge loss",
            "This run used the hinge loss instead (Lim and Ye, 2017).",
            "The losses logged below are LD = max(0, 1 − D(x)) + max(0, 1 + D(G(z))) and LG = −D(G(z)), each "
            "term averaged over the batch, then over each epoch.",
            "no D can bring LD below 2; every D whose scores stay within [−1, 1] reaches it. The natural one is "
            "D ≡ 0, scoring every image 0, and in the logged losses this point reads LD = 2 and LG = −D(G(z)) = 0.",
            f"At epoch 20 this run had LD = {last['d_loss']:.4f}, LG = {last['g_loss']:.4f}, and mean sigmoids",
            "dashed lines mark 2 (D) and 0 (G), their values where D cannot tell and scores every image 0",
            "the dotted lines mark σ(1) ≈ 0.731 and σ(−1) ≈ 0.269",
            "LD rises towards 2",
            "(4) Regularisation, packing and augmentation in this run",
            "R1 = (γ/2) E‖∇xD(x)‖2 on real images, with γ = 0.5. Mescheder",
            "on every 4th D step only, with γ × 4 (StyleGAN2's lazy regularisation, Karras et al., 2020)",
            f"In epoch 20, the last, R1 averaged {last['r1_penalty']:.4g}.",
            "D judged 2 images at once (PacGAN, Lin et al., 2018)", "in D's layer table (section 6) B counts packs.",
            "translation (shifts of up to 1/8 of the side); cutout (a zeroed square of half the side).",
            "Each op applied to each image with probability p = 0.5.",
            "Right: DiffAugment's probability p at the end of each epoch (fixed)."):
        assert words in text, words
    assert "R2, the same" not in text and "ADA's controller" not in text and "relativistic" not in text
    references = text[text.index("References."):text.index("6. The run")]
    for cited in ("Radford", "Geometric GAN", "Which Training Methods", "Analyzing and Improving the Image Quality",
                  "PacGAN", "Differentiable Augmentation"):
        assert cited in references, cited
    for uncited in ("The GAN is dead", "relativistic", "Limited Data"):
        assert uncited not in references, uncited
    assert "Images per D input (PacGAN) 2" in text and "Penalty every N D steps 4" in text
    for row in ("Linear(100, 6272, no bias) (B, 6272) 627,200", "GroupSyncBatchNorm(128) (B, 128, 7, 7) 256",
                "Conv2d(2, 64, 4×4, stride 2, padding 1) (B, 64, 14, 14) 2,112"):
        assert row in rows, row
    assert "Residual block" not in text
    assert_no_latex(text)


def test_minimax_report_rests_at_minus_ln_2(tmp_path):
    """log(1 - D(G(z))) at D = 1/2 is -ln 2: the caption, the text and the plot's axis say so."""
    run = write_run(tmp_path, epochs=20, sample_epochs=(10, 20), config={"loss": "minimax"}, quality=False,
                    metrics_update=lambda e: {"g_loss": -0.7 - 0.5 * math.exp(-e / 5)})
    text = joined(pdf_text(render_report(run)))
    assert "dashed lines mark the equilibrium values 2ln 2 (D) and −ln 2 (G)." in text
    assert "the losses towards 2ln 2 and −ln 2." in text
    assert "This run used the minimax generator loss." in text and "LG = log(1 − D(G(z)))" in text


def test_compare_names_each_runs_loss_and_draws_no_shared_line_across_losses(runs, tmp_path):
    pdf = render_compare([runs["course"], runs["rpgan"], runs["hinge"]], tmp_path / "c.pdf",
                         html=tmp_path / "c.html")
    text, rows = joined(pdf_text(pdf)), pdf_rows(pdf)
    labels = re.findall(r'<th>([^<]*)<span class="option">', (tmp_path / "c.html").read_text())
    for label in ("Architecture", "Loss", "R1 γ (real images)", "R2 γ (generated images)", "Penalty every N D steps",
                  "Images per D input (PacGAN)", "DiffAugment", "Augmentation p", "Preset"):
        assert label in labels, label
    # off here, not applicable there: no difference worth a row
    for label in ("Class-conditional", "Latent code values (InfoGAN)", "Synchronised BatchNorm"):
        assert label not in labels, label
    for row in ("Loss nonsaturating rpgan hinge", "Architecture mlp resnet dcgan", "R1 γ (real images) — 0.1 0.5",
                "Preset — resnet-mnist@1 —"):
        assert row in rows, row
    assert ("Loss (D and G loss where D cannot tell) nonsaturating (1.386, 0.693) rpgan (0.693, 0.693) "
            "hinge (2, 0 with D ≡ 0)") in text
    for words in ("the runs used different losses (nonsaturating, rpgan, hinge), whose values mean different things",
                  "each legend entry names its run's loss", "a dashed line in a run's colour marks the value its loss",
                  "For the nonsaturating loss this is D's probability", "for the rpgan and hinge loss D gives an "
                  "unbounded score", "Left: the gradient penalties as added to D's loss",
                  "right: DiffAugment's probability p at the end of each epoch, for the runs that logged them."):
        assert words in text, words
    assert "dashed: the equilibrium values" not in text
    assert_no_latex(text)


def test_compare_of_two_hinge_runs_shares_their_lines(runs, tmp_path):
    other = recipe_run(tmp_path, "hi2", {**hinge_config("hi2"), "lr": 1e-4}, hinge_metrics)
    text = joined(pdf_text(render_compare([runs["hinge"], other], tmp_path / "h.pdf")))
    assert "dashed: 2 and 0, the hinge losses where D cannot tell and scores every image 0." in text
    assert "Dotted: σ(±1), the hinge loss's margins" in text
    assert "different losses" not in text
    assert_no_latex(text)


def test_reference_lines_follow_the_losses():
    ns, ns2 = Series("a", [], color="C0"), Series("b", [], color="C1")
    rp, hinge, unknown = (Series("r", [], color="C2", loss="rpgan"), Series("h", [], color="C3", loss="hinge"),
                          Series("w", [], color="C4", loss="wgan"))
    assert rest_values([ns, ns2], "d_loss") == [(pytest.approx(2 * LN2), "k")]
    assert rest_values([ns, rp], "g_loss") == [(pytest.approx(LN2), "k")]  # both rest at ln 2: one shared line
    assert rest_values([ns, rp], "d_loss") == [(pytest.approx(2 * LN2), "C0"), (pytest.approx(LN2), "C2")]
    assert rest_values([hinge], "g_loss") == [(0.0, "k")]
    assert rest_values([ns, unknown], "d_loss") == [(pytest.approx(2 * LN2), "C0")]  # nothing claimed for wgan
    assert rest_values([Series("m", [], loss="minimax")], "g_loss") == [(pytest.approx(-LN2), "k")]
    assert disc_reference([ns, ns2]) == "half" and disc_reference([Series("m", [], loss="minimax")]) == "half"
    assert disc_reference([hinge]) == "hinge" and disc_reference([rp]) is None and disc_reference([ns, rp]) is None
    assert run_label(ns, [ns, ns2]) == "a" and run_label(rp, [ns, rp]) == "r (rpgan)"


def test_layer_text_reads_well():
    assert layer_text("Conv2d(64, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=4, bias=False)") \
        == "Conv2d(64, 64, 3×3, padding 1, groups 4, no bias)"
    assert layer_text("ConvTranspose2d(128, 64, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1), bias=False)") \
        == "ConvTranspose2d(128, 64, 4×4, stride 2, padding 1, no bias)"
    assert layer_text("Linear(in_features=32, out_features=1, bias=True)") == "Linear(32, 1)"
    assert layer_text("Resample(8, down, filter=[1.0, 2.0, 1.0])") == "Resample(8, down, filter [1, 2, 1])"
    assert layer_text("Flatten(start_dim=1, end_dim=-1)") == "Flatten"
    assert layer_text("LeakyReLU(0.2)") == "LeakyReLU(0.2)"  # what old runs recorded stays as it was


def test_fixture_tables_are_what_the_resnet_writes():
    """The synthetic run's layer tables are the real network's (nets/describe.py), blocks included."""
    pytest.importorskip("torch")
    from gan_dist.nets import NetSpec, build_models
    from gan_dist.nets.describe import describe_models

    G, D = build_models(NetSpec(arch="resnet", latent_dim=100, image_shape=(1, 28, 28), width=8, blocks=1))
    assert describe_models(G, D) == resnet_architecture()
    G, D = build_models(NetSpec(arch="dcgan", latent_dim=100, image_shape=(1, 28, 28)))
    tables = describe_models(G, D)
    assert not any(r.get("block_type") == "ResidualBlock" for rows in tables.values() for r in rows)


@pytest.mark.slow
def test_a_real_recipe_run_is_reported_from_its_own_numbers(tmp_path):
    """`gan train` with resnet + rpgan + R1/R2 + DiffAugment with ADA's p on 160 tiny images, then
    `gan report`: the paragraphs, the last epoch's numbers and the residual block headings
    come from what the run wrote."""
    from datasets_fixtures import fashion_files
    from helpers import gan, metrics

    fashion_files(tmp_path / "data", n=160)
    gan("train", "--cpu", "--dataset", "fashion-mnist", "--data-dir", tmp_path / "data", "--batch-size", "32",
        "--arch", "resnet", "--width", "8", "--blocks", "1", "--latent-dim", "16", "--epochs", "2",
        "--sample-epochs", "1", "--loss", "rpgan", "--r1", "0.05", "--r2", "0.05", "--augment", "translation",
        "--augment-p", "auto", "--ada-kimg", "0.5", "--ada-target", "0.05", "--out", tmp_path, "--name", "real")
    run = tmp_path / "real"
    gan("report", run)
    text = joined(pdf_text(run / "report.pdf"))
    last = metrics(run)[-1]
    assert last["augment_p"] > 0  # ADA acted, so the p reported is a real one
    for words in (f"At epoch 2 this run had LD = {last['d_loss']:.4f}, LG = {last['g_loss']:.4f}",
                  f"σ(D(x)) = {last['d_real']:.3f} and σ(D(G(z))) = {last['d_fake']:.3f}",
                  f"In epoch 2, the last, R1 averaged {last['r1_penalty']:.4g} and R2 {last['r2_penalty']:.4g}.",
                  f"After epoch 2, p was {last['augment_p']:.3f}", "LD = LG = ln 2 ≈ 0.693",
                  "relativistic pairing loss", "residual convolutional networks without normalisation",
                  "one 7 × 7 map per channel", "Residual block: its input is added to the output of the layers below",
                  "The GAN is dead; long live the GAN!"):
        assert words in text, words
    assert "kernel_size" not in text
    assert_no_latex(text)
