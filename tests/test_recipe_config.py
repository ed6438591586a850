"""The recipe's options and presets (issue 26): values reach the resolved config in one canonical
form, every bad input is one line with exit 2 and nothing written, presets sit between the
defaults and --config/flags, `gan presets` lists them, and the wheel ships them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gan_dist.cli import app
from gan_dist.config import OPTIONS, TUNABLE, TrainConfig, check_pack_split, resolve_config
from gan_dist.datasets import is_known_dataset
from gan_dist.errors import GanError
from gan_dist.presets import PRESETS, load_preset, parse_preset, read_preset

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    result = runner.invoke(app, list(map(str, args)))
    return result.exit_code, (result.stdout or "") + (result.stderr or "")


def test_recipe_options_reach_the_config_in_canonical_form(tmp_path):
    cfg = resolve_config(overrides={"name": "x", "arch": "resnet", "loss": "rpgan", "r1": 0.1, "r2": 0.2,
                                    "reg_interval": 4, "pack": 2, "augment": " translation , color",
                                    "augment_p": "1", "blocks": 3, "width": 16})
    assert (cfg.loss, cfg.r1, cfg.r2, cfg.reg_interval, cfg.pack, cfg.blocks) == ("rpgan", 0.1, 0.2, 4, 2, 3)
    assert (cfg.augment, cfg.augment_p) == ("translation,color", "1.0")
    assert cfg.augment_ops == ("translation", "color") and cfg.augment_probability == 1.0
    assert (cfg.ema_kimg, cfg.sync_bn) == (10.0, False)  # resnet: EMA on by default, no BatchNorm to sync
    toml = tmp_path / "c.toml"
    toml.write_text('augment = "cutout"\naugment-p = 0.25\nr1 = 1\n')  # a number for augment-p, an int for r1
    cfg = resolve_config(toml, {"name": "x"})
    assert (cfg.augment_p, cfg.augment_probability, cfg.r1) == ("0.25", 0.25, 1.0)
    auto = resolve_config(overrides={"name": "x", "augment": "translation", "augment_p": "auto"})
    assert auto.augment_probability is None
    assert TrainConfig.from_dict(json.loads(json.dumps(auto.to_dict()))) == auto
    # R1/R2 act on every network, the coursework MLP too
    assert resolve_config(overrides={"name": "x", "r1": 10.0}).r1 == 10.0
    defaults = resolve_config(overrides={"name": "x"})
    assert (defaults.loss, defaults.r1, defaults.r2, defaults.pack, defaults.augment, defaults.preset) == (
        "nonsaturating", 0.0, 0.0, 1, "", "")


@pytest.mark.parametrize("args, message", [
    (["--arch", "dcgan", "--pack", "3"], "--pack 3 does not divide --batch-size 100: use a multiple of 3"),
    (["--pack", "2"], "--pack needs a convolutional --arch (dcgan, resnet): the mlp discriminator does not pack"),
    (["--arch", "dcgan", "--pack", "2", "--conditional"], "--pack excludes --conditional"),
    (["--arch", "resnet", "--pack", "2", "--latent-codes", "10"], "--pack excludes --latent-codes"),
    (["--arch", "resnet", "--pack", "0"], "--pack must be at least 1"),
    (["--r1", "-1"], "--r1 must be 0 (off) or a positive gamma, got -1"),
    (["--r2", "-0.5"], "--r2 must be 0 (off) or a positive gamma, got -0.5"),
    (["--reg-interval", "0"], "--reg-interval must be at least 1"),
    (["--arch", "resnet", "--blocks", "0"], "--blocks must be at least 1"),
    (["--augment", "translaton"], "unknown augment op 'translaton' (did you mean 'translation'?)"),
    (["--augment", "flip"], "unknown augment op 'flip'"),
    (["--augment", "color,color"], "names an op twice"),
    (["--augment", "color", "--augment-p", "1.5"], "--augment-p must lie in [0, 1] (or be auto), got 1.5"),
    (["--augment", "color", "--augment-p", "-0.1"], "--augment-p must lie in [0, 1] (or be auto), got -0.1"),
    (["--augment", "color", "--augment-p", "often"], "--augment-p must be a number in [0, 1] or auto"),
    (["--loss", "relativistic"], "unknown loss 'relativistic'"),
    (["--preset", "resnet-mnst"], "unknown preset 'resnet-mnst' (did you mean 'resnet-mnist'?)"),
    (["--preset", "coursework@7"], "this gan_dist ships version 1 of coursework, not 7"),
])
def test_bad_recipe_options_are_refused_on_one_line(tmp_path, args, message):
    code, out = run("train", "--out", tmp_path, "--name", "r", "--dry-run", *args)
    assert code == 2, out
    assert message in out and out.strip().count("\n") == 0 and "Traceback" not in out
    assert list(tmp_path.iterdir()) == []


def test_pack_split_needs_the_world_size():
    check_pack_split(8, 2)
    with pytest.raises(GanError, match="--pack 4 does not divide the per-process batch of 6 images"):
        check_pack_split(6, 4)  # --batch-size 12 over 2 processes: 12 % 4 == 0, but 6 % 4 != 0


def test_every_tunable_option_is_named_by_allow_changes():
    text = OPTIONS["allow_changes"].help
    assert all(key.replace("_", "-") in text for key in TUNABLE), sorted(TUNABLE)


def test_report_shows_recipe_settings_only_for_networks_they_act_on():
    from gan_dist.report.describe import config_rows

    def labels(arch, **options):
        return {label for label, _ in config_rows(TrainConfig(arch=arch, **options).to_dict())}

    on = {"r1": 0.1, "augment": "translation", "augment_p": "auto", "pack": 2, "preset": "x@1"}
    mlp, resnet = labels("mlp", **{k: v for k, v in on.items() if k != "pack"}), labels("resnet", **on)
    assert {"Loss", "R1 γ (real images)", "R2 γ (generated images)", "DiffAugment", "Augmentation p",
            "ADA target", "Preset"} <= mlp & resnet
    assert {"Residual blocks per stage", "Images per D input (PacGAN)", "Base width"} <= resnet - mlp
    assert "Synchronised BatchNorm" not in resnet
    # what is off stays out of the settings (the coursework's table keeps its rows)
    plain = labels("mlp")
    assert "Loss" in plain and not {"R1 γ (real images)", "DiffAugment", "Augmentation p", "ADA target",
                                    "Images per D input (PacGAN)", "Preset"} & plain
    assert "ADA target" not in labels("resnet", augment="translation", augment_p="0.5")


# ---- presets ---------------------------------------------------------------------------------
def test_preset_values_reach_the_config_and_flags_win(tmp_path):
    cfg = resolve_config(overrides={"preset": "resnet-mnist", "name": "x"})
    preset = read_preset("resnet-mnist")
    for key, value in preset.options.items():
        assert getattr(cfg, key) == (tuple(value) if isinstance(value, list) else value), key
    assert cfg.preset == "resnet-mnist@1" and cfg.to_dict()["preset"] == "resnet-mnist@1"
    flagged = resolve_config(overrides={"preset": "resnet-mnist@1", "name": "x", "r1": 0.5, "epochs": 3})
    assert (flagged.r1, flagged.epochs, flagged.r2, flagged.arch) == (0.5, 3, 0.05, "resnet")
    toml = tmp_path / "c.toml"  # a --config file sits between the preset and the flags
    toml.write_text('preset = "dcgan-mnist"\nlr = 5e-4\nbatch-size = 128\n')
    mixed = resolve_config(toml, {"name": "x", "batch_size": 64})
    assert (mixed.preset, mixed.arch, mixed.latent_codes, mixed.lr, mixed.batch_size) == (
        "dcgan-mnist@1", "dcgan", 10, 5e-4, 64)
    assert resolve_config(toml, {"name": "x", "preset": "coursework"}).arch == "mlp"  # the flag's preset wins


def test_dry_run_with_a_preset_prints_its_values(tmp_path):
    code, out = run("train", "--dry-run", "--preset", "dcgan-mnist", "--lr", "0.002", "--out", tmp_path, "--name", "d")
    assert code == 0, out
    data = json.loads(out)
    assert (data["preset"], data["arch"], data["batch_size"], data["epochs"], data["lr"]) == (
        "dcgan-mnist@1", "dcgan", 256, 263, 0.002)
    assert list(tmp_path.iterdir()) == []


def test_coursework_preset_is_todays_defaults():
    preset = resolve_config(overrides={"preset": "coursework", "name": "x"}).to_dict()
    defaults = resolve_config(overrides={"name": "x"}).to_dict()
    assert preset.pop("preset") == "coursework@1" and defaults.pop("preset") == ""
    assert preset == defaults


def test_dcgan_mnist_is_the_measured_recipe():
    cfg = resolve_config(overrides={"preset": "dcgan-mnist", "name": "x"})
    assert (cfg.dataset, cfg.arch, cfg.lr, cfg.batch_size, cfg.latent_codes, cfg.epochs) == (
        "mnist-sample", "dcgan", 1e-3, 256, 10, 263)
    assert 5000 // 256 * 263 == 4997  # the steps the measured figures were taken at
    assert "fd 91.8" in read_preset("dcgan-mnist").measured


def test_every_shipped_preset_reads_and_resolves():
    folder = ROOT / "gan_dist" / "presets"
    assert sorted(PRESETS.values()) == sorted(p.name for p in folder.glob("*.toml"))
    for name in PRESETS:
        preset = load_preset(name)
        assert preset.name == name and preset.version >= 1 and preset.description and preset.measured
        dataset = preset.options.get("dataset", "mnist")
        if not is_known_dataset(dataset):  # stacked-mnist arrives with the yardsticks issue
            continue
        resolve_config(overrides={"preset": name, "name": "x"})
    assert read_preset("stacked-mnist").options["pack"] == 2


def test_preset_files_are_checked():
    good = '[preset]\nname = "p"\nversion = 2\ndescription = "d"\nmeasured = "m"\n[train]\nlr = 1e-3\n'
    assert parse_preset("p", good, "test").options == {"lr": 1e-3}
    with pytest.raises(GanError, match="sets out, processes: a preset says how to train, not where"):
        parse_preset("p", good + 'processes = 2\nout = "x"\n', "test")
    with pytest.raises(GanError, match="unknown key 'lrr' in test \\(did you mean 'lr'\\?\\)"):
        parse_preset("p", good.replace("lr =", "lrr ="), "test")
    with pytest.raises(GanError, match="needs a \\[preset\\] table"):
        parse_preset("p", "[train]\nlr = 1e-3\n", "test")
    with pytest.raises(GanError, match="name must be 'q'"):
        parse_preset("q", good, "test")


def test_gan_presets_lists_every_preset():
    code, out = run("presets")
    assert code == 0
    for name in PRESETS:
        assert f"{name}@{read_preset(name).version}" in out
        assert read_preset(name).measured.split()[0] in out  # what it measured, or "not ..."
    assert "fd 91.8" in out


@pytest.mark.slow
def test_the_wheel_ships_the_presets(tmp_path):
    source = tmp_path / "src"  # a copy: setuptools writes build/ beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "gan_dist", source / "gan_dist", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(source),
                    "-w", str(tmp_path)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("gan_dist-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"gan_dist/presets/{file}" for file in PRESETS.values()} <= names
