"""The seams of issue 17: one declaration per option, one parser / writer / namer of each
kind, networks that describe themselves, per-step randomness, and a launcher that leaves
nothing changed behind."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from typer.testing import CliRunner

from gan_dist.atomic import write_atomic
from gan_dist.cli import app
from gan_dist.config import (
    OPTIONS,
    RESUMABLE,
    coerce_value,
    flag,
    read_toml,
    report_labels,
)
from gan_dist.epochs import epoch_tag, parse_epoch_list, parse_epoch_tag
from gan_dist.errors import GanError


def test_every_option_is_declared_once_and_reaches_cli_toml_resume_and_report(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    help_text = CliRunner().invoke(app, ["train", "--help"]).output
    for key, spec in OPTIONS.items():
        assert flag(key) in help_text, f"{flag(key)} missing from gan train --help"
        assert (key in RESUMABLE) == spec.resumable
        toml = tmp_path / f"{key}.toml"
        value = {bool: "true", int: "1", float: "0.5", str: '"x"', tuple: "[1, 2]"}[spec.kind]
        toml.write_text(f"{key.replace('_', '-')} = {value}\n")
        if spec.toml:
            assert key in read_toml(toml)
        else:
            with pytest.raises(GanError, match="unknown key"):
                read_toml(toml)
    labels = dict((key, label) for label, key in report_labels())
    assert labels["lr"] == "Adam learning rate" and "name" not in labels
    # what a resume may change: where and how long, never how it optimises
    assert {"epochs", "processes", "nodes", "sample_epochs"} <= RESUMABLE
    assert not {"lr", "batch_size", "seed", "arch", "dataset", "loss", "d_dropout"} & RESUMABLE


def test_value_types_come_from_the_resolved_annotations():
    assert coerce_value("gpus", None, "x") is None and coerce_value("gpus", 2, "x") == 2
    assert coerce_value("lr", 1, "x") == 1.0 and isinstance(coerce_value("lr", 1, "x"), float)
    assert coerce_value("sample_epochs", "5,10", "x") == (5, 10)
    for key, bad in [("epochs", 1.5), ("epochs", True), ("cpu", 1), ("lr", "fast"), ("dataset", 3)]:
        with pytest.raises(GanError, match=key):
            coerce_value(key, bad, "x")
    with pytest.raises(GanError, match="epochs"):
        coerce_value("epochs", None, "x")  # not nullable


def test_one_epoch_list_parser_and_one_namer():
    assert parse_epoch_list("10, 20,10", "--x") == (10, 20)
    assert parse_epoch_list([3, 1], "--x") == (3, 1)
    for bad in ("0,10", "ten", "-1", [0], ["1"]):
        with pytest.raises(GanError, match="--x"):
            parse_epoch_list(bad, "--x")
    assert epoch_tag(7) == "epoch_0007" and parse_epoch_tag("epoch_0007") == 7
    assert parse_epoch_tag(".tmp-epoch_0007") is None and parse_epoch_tag("epoch_7") is None
    # the CLI's eval and report commands use the same rule: epoch 0 is refused everywhere
    result = CliRunner().invoke(app, ["eval", "nowhere", "--epochs", "0,10"])
    assert result.exit_code == 2 and "epochs >= 1" in result.output


def test_atomic_writer_keeps_the_old_file_when_a_write_fails(tmp_path):
    target = tmp_path / "f.json"
    write_atomic(target, "old")

    def broken(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomic(target, broken)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]
    write_atomic(target, b"new")
    assert target.read_text() == "new" and oct(target.stat().st_mode & 0o777) != "0o600"


def test_networks_declare_their_shapes_and_layer_tables():
    from gan_dist.nets import NetSpec, build_models, parameter_count
    from gan_dist.nets.describe import describe_models

    G, D = build_models(NetSpec("mlp", latent_dim=64, image_shape=(1, 28, 28)))
    assert (G.latent_dim, G.image_shape, G.num_classes) == (64, (1, 28, 28), 0)
    table = describe_models(G, D)
    assert table["generator"][0] == {"layer": "Linear(in_features=64, out_features=256, bias=True)",
                                     "output": "(B, 256)", "parameters": 64 * 256 + 256}
    assert table["generator"][-1]["layer"] == "Tanh" and table["generator"][-1]["output"] == "(B, 784)"
    assert table["discriminator"][-1]["output"] == "(B, 1)"
    for net, rows in ((G, table["generator"]), (D, table["discriminator"])):
        assert sum(r["parameters"] for r in rows) == parameter_count(net)


def test_noise_and_dropout_seeds_depend_on_epoch_and_step_only():
    from gan_dist.training.randomness import StepRandomness

    a, b = StepRandomness(3, torch.device("cpu")), StepRandomness(3, torch.device("cpu"))
    first = a.noise(2, 7, 10, 4)
    b.noise(1, 0, 10, 4), b.noise(2, 6, 10, 4)  # another history of draws
    assert torch.equal(first, b.noise(2, 7, 10, 4))
    assert not torch.equal(first, a.noise(2, 8, 10, 4))
    a.seed_dropout(2, 7, rank=0)
    x = torch.rand(5)
    b.seed_dropout(2, 7, rank=0)
    assert torch.equal(x, torch.rand(5))
    b.seed_dropout(2, 7, rank=1)
    assert not torch.equal(x, torch.rand(5))


def test_fault_spec_is_checked():
    from gan_dist.training.faults import Fault

    assert Fault.parse("1:2") == Fault(1, 2, 0, "error")
    assert Fault.parse("0:3:5:nan")(0, 3, 5) == "nan" and Fault.parse("0:3:5:nan")(0, 3, 4) is None
    with pytest.raises(RuntimeError, match="injected failure on rank 1 at epoch 2"):
        Fault.parse("1:2")(1, 2, 0)
    for bad in ("1", "a:b", "1:2:3:boom", "1:2:3:4:5"):
        with pytest.raises(GanError):
            Fault.parse(bad)


def _handlers():
    return {sig: signal.getsignal(sig) for sig in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT)}


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_launcher_leaves_environment_and_signal_handlers_as_it_found_them(tmp_path, processes):
    from gan_dist.config import resolve_config
    from gan_dist.training.launch import launch_training

    cfg = resolve_config(None, {"cpu": True, "dataset": "mnist-sample", "batch_size": 1000, "epochs": 1,
                                "processes": processes, "out": str(tmp_path), "name": "r"})
    env_before, handlers_before = dict(os.environ), _handlers()
    threads = torch.get_num_threads()
    try:
        assert launch_training(cfg, {"cpu", "processes", "name"}) == 0
    finally:
        torch.set_num_threads(threads)
    assert dict(os.environ) == env_before
    assert _handlers() == handlers_before
    assert (tmp_path / "r" / "generator.safetensors").is_file()
