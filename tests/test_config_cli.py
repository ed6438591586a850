"""Config resolution, TOML, and every refusal of bad input: one line, exit != 0, nothing changed."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from gan_dist.cli import app
from gan_dist.config import TrainConfig, read_toml, resolve_config
from gan_dist.errors import GanError

runner = CliRunner()


def run(*args):
    result = runner.invoke(app, list(map(str, args)))
    return result.exit_code, (result.stdout or "") + (result.stderr or "")


def test_config_round_trip_and_priority(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('epochs = 7\nlr = 0.001\nsample-epochs = [2, 4]\n[unused]\n'.replace("[unused]\n", ""))
    cfg = resolve_config(toml, {"epochs": 9, "name": "x"})
    assert (cfg.epochs, cfg.lr, cfg.sample_epochs) == (9, 0.001, (2, 4))  # flag beats file
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.saved_epochs() == (2, 4, 9)  # the last epoch is always saved


def test_dry_run_prints_resolved_config(tmp_path):
    code, out = run("train", "--dry-run", "--epochs", "3", "--batch-size", "50", "--out", tmp_path, "--name", "r")
    assert code == 0
    data = json.loads(out)
    assert data["epochs"] == 3 and data["batch_size"] == 50 and data["name"] == "r"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--epochs", "-3"], "--epochs must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--lr", "0"], "--lr must be positive"),
    (["--lr", "-1e-3"], "--lr must be positive"),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--precision", "fp8"], "unknown precision"),
    (["--loss", "hinj"], "unknown loss 'hinj' (did you mean 'hinge'?)"),
    (["--name", "../escape"], "is not a plain directory name"),
    (["--name", ".."], "is not a plain directory name"),
    (["--nodes", "2", "--node-rank", "2", "--name", "x"], "--node-rank must lie in 0..1"),
    (["--sample-epochs", "ten"], "comma-separated list"),
    (["--eval-features", "inceptoin"], "did you mean 'inception'"),
    (["--eval-samples", "7"], "--eval-samples must be at least 8"),
    (["--eval-real-samples", "100"], "use it with --eval-features inception"),
])
def test_bad_options_are_refused_on_one_line(tmp_path, args, message):
    code, out = run("train", "--out", tmp_path, "--dry-run", *args)
    assert code == 2
    assert message in out and out.strip().count("\n") == 0 and "Traceback" not in out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text, message", [
    ("epochz = 3\n", "unknown key 'epochz'"),
    ("epochs = 'three'\n", "must be a whole number"),
    ("epochs = [\n", "is not valid TOML"),
    ("d_dropout = true\n", "must be a number"),
])
def test_bad_toml_is_refused(tmp_path, text, message):
    toml = tmp_path / "bad.toml"
    toml.write_text(text)
    code, out = run("train", "--config", toml, "--dry-run")
    assert code == 2 and message in out and "Traceback" not in out
    with pytest.raises(GanError):
        read_toml(toml)


def test_renamed_features_option_still_reads(tmp_path):
    """--features became --eval-features: config.json / checkpoints / TOML files with the old key load."""
    old = {**TrainConfig(name="x").to_dict(), "features": "inception"}
    del old["eval_features"]
    assert TrainConfig.from_dict(old).eval_features == "inception"
    toml = tmp_path / "old.toml"
    toml.write_text('features = "inception"\n')
    assert read_toml(toml) == {"eval_features": "inception"}
    code, out = run("train", "--config", toml, "--dry-run", "--out", tmp_path, "--name", "r")
    assert code == 0 and json.loads(out)["eval_features"] == "inception" and "features" not in json.loads(out)


def test_missing_config_file(tmp_path):
    code, out = run("train", "--config", tmp_path / "nope.toml", "--dry-run")
    assert code == 2 and "does not exist" in out


def test_existing_run_is_never_overwritten(tmp_path):
    run_dir = tmp_path / "taken"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text('{"epoch": 1}\n')
    code, out = run("train", "--cpu", "--dataset", "mnist-sample", "--out", tmp_path, "--name", "taken")
    assert code == 2 and "already exists" in out and "--resume auto" in out
    assert (run_dir / "metrics.jsonl").read_text() == '{"epoch": 1}\n'
    assert sorted(p.name for p in run_dir.iterdir()) == ["metrics.jsonl"]


def test_resume_of_nothing_is_refused(tmp_path):
    code, out = run("train", "--cpu", "--resume", tmp_path / "missing")
    assert code == 2 and "no such run directory" in out
    (tmp_path / "empty").mkdir()
    code, out = run("train", "--cpu", "--resume", tmp_path / "empty")
    assert code == 2 and "no complete checkpoint" in out
    code, out = run("train", "--cpu", "--resume", "auto", "--out", tmp_path / "nowhere")
    assert code == 2 and "found no run with a checkpoint" in out


def test_missing_mnist_names_the_sample(tmp_path):
    code, out = run("train", "--cpu", "--dataset", "mnist", "--data-dir", tmp_path / "none",
                    "--out", tmp_path / "runs", "--name", "m")
    assert code == 2 and "mnist-sample" in out and "Traceback" not in out
    # the run directory holds nothing from the failed start
    assert not (tmp_path / "runs" / "m" / "metrics.jsonl").exists()


def test_impossible_process_requests(tmp_path):
    code, out = run("train", "--gpus", "4", "--dataset", "mnist-sample", "--out", tmp_path, "--name", "g")
    assert code == 2 and "--gpus 4 asked for, but 0 GPU(s) are visible" in out
    code, out = run("train", "--cpu", "--processes", "3", "--batch-size", "100", "--out", tmp_path, "--name", "p")
    assert code == 2 and "cannot be split evenly over 3 processes" in out
    code, out = run("train", "--cpu", "--precision", "fp16", "--dataset", "mnist-sample", "--out", tmp_path, "--name", "f")
    assert code == 2 and "fp16 needs a GPU" in out
