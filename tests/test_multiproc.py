"""Real multi-process training with gloo on the CPU: 2 processes on one machine, 2 "nodes"
meeting over 127.0.0.1, equivalence with 1 process, and failures that end the run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
from helpers import FAST, free_port, gan, generator_tensors, max_abs_diff, metrics

pytestmark = [pytest.mark.slow, pytest.mark.multiproc]
SAME = [*FAST, "--epochs", "2", "--d-dropout", "0", "--seed", "5"]


def check_run(run, world_size: int) -> None:
    rows = metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(r["world_size"] == world_size for r in rows)
    config = json.loads((run / "config.json").read_text())
    assert config["world_size"] == world_size and config["per_process_batch"] == 500 // world_size
    assert config["env"]["distributed_type"].endswith("MULTI_CPU" if world_size > 1 else "NO")
    # a single writer: exactly one status file, one metrics line per epoch, no stray temp files
    assert not list(run.rglob(".tmp-*")) and not list(run.rglob("*.tmp"))


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    gan("train", *SAME, "--out", out, "--name", "one")
    return out / "one"


def test_two_processes_match_one_process(tmp_path, one_process):
    gan("train", *SAME, "--processes", "2", "--out", tmp_path, "--name", "two")
    two = tmp_path / "two"
    check_run(one_process, 1)
    check_run(two, 2)
    diff = max_abs_diff(generator_tensors(one_process / "generator.safetensors"),
                        generator_tensors(two / "generator.safetensors"))
    for a, b in zip(metrics(one_process), metrics(two)):
        assert b["g_loss"] == pytest.approx(a["g_loss"], abs=1e-3)
        assert b["d_loss"] == pytest.approx(a["d_loss"], abs=1e-3)
    print(f"max |G(1 process) - G(2 processes)| = {diff:.3g}")
    assert diff < 1e-3  # summation order only; a different shard or noise gives ~1e-2


def test_two_nodes_meet_over_loopback(tmp_path, one_process):
    port = free_port()
    node = [sys.executable, "-m", "gan_dist", "train", *map(str, SAME), "--nodes", "2", "--master-addr", "127.0.0.1",
            "--master-port", str(port), "--out", str(tmp_path), "--name", "nodes"]
    procs = [subprocess.Popen([*node, "--node-rank", str(r)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in (0, 1)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    run = tmp_path / "nodes"
    check_run(run, 2)
    config = json.loads((run / "config.json").read_text())
    assert config["env"]["num_nodes"] == 2
    diff = max_abs_diff(generator_tensors(one_process / "generator.safetensors"),
                        generator_tensors(run / "generator.safetensors"))
    print(f"max |G(1 process) - G(2 nodes)| = {diff:.3g}")
    assert diff < 1e-3


def test_one_failing_process_ends_the_run_with_its_error_once(tmp_path):
    tic = time.time()
    proc = gan("train", *SAME, "--processes", "2", "--out", tmp_path, "--name", "fail",
               "--fault", "1:2", check=False, timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.count("injected failure on rank 1 at epoch 2") == 1, proc.stderr
    assert "process 1 failed" in proc.stderr and "Traceback" not in proc.stderr
    assert time.time() - tic < 120  # no hang
    assert [r["epoch"] for r in metrics(tmp_path / "fail")] == [1]


def test_resume_on_a_different_number_of_processes(tmp_path, one_process):
    common = [*SAME[:-4], "--d-dropout", "0", "--seed", "5", "--out", tmp_path, "--name", "grow"]
    gan("train", *common, "--epochs", "1")
    gan("train", *common, "--epochs", "2", "--processes", "2", "--resume", "auto")
    rows = metrics(tmp_path / "grow")
    assert [(r["epoch"], r["world_size"]) for r in rows] == [(1, 1), (2, 2)]
    diff = max_abs_diff(generator_tensors(one_process / "generator.safetensors"),
                        generator_tensors(tmp_path / "grow" / "generator.safetensors"))
    assert diff < 1e-3


def test_port_in_use_and_unreachable_master(tmp_path):
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = gan("train", *SAME, "--processes", "2", "--master-port", str(port), "--out", tmp_path,
                   "--name", "busy", check=False)
    assert proc.returncode == 2 and f"--master-port {port} is already in use" in proc.stderr
    tic = time.time()
    proc = gan("train", *SAME, "--nodes", "2", "--node-rank", "1", "--master-addr", "127.0.0.1",
               "--master-port", str(free_port()), "--out", tmp_path, "--name", "alone", check=False,
               env={"GAN_RENDEZVOUS_TIMEOUT": "5"})
    assert proc.returncode == 2 and "could not start the 2-process run" in proc.stderr, proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert time.time() - tic < 90


# One process here: on two, SIGUSR1 reaches the workers as the launcher's own stop file, and
# that is tested in tests/test_long_runs.py and on the Slurm cluster (GAN_STOP_FILE).
@pytest.mark.parametrize("processes", ["1"])
def test_stop_request_checkpoints_exits_75_and_resumes(tmp_path, processes):
    stop_file = tmp_path / "stop-now"
    args = [*SAME[:-4], "--epochs", "6", "--processes", processes, "--out", str(tmp_path), "--name", "stop"]
    proc = subprocess.Popen([sys.executable, "-m", "gan_dist", "train", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**__import__("os").environ, "GAN_STOP_FILE": str(stop_file)})
    run = tmp_path / "stop"
    deadline = time.time() + 300
    while not ((run / "metrics.jsonl").is_file() and metrics(run)):
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
        time.sleep(0.05)
    stop_file.write_text("requeue")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 75, err
    done = [r["epoch"] for r in metrics(run)]
    assert done[-1] < 6 and json.loads((run / "status.json").read_text())["state"] == "stopped"
    assert (run / "checkpoints" / f"epoch_{done[-1]:04d}" / "trainer_state.json").is_file()
    stop_file.unlink()
    gan("train", *args, "--resume", "auto")
    assert [r["epoch"] for r in metrics(run)] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("processes", ["1", "2"])
def test_ctrl_c_ends_with_one_line_and_a_resumable_run(tmp_path, processes):
    import signal

    args = [*SAME[:-4], "--epochs", "40", "--processes", processes, "--out", str(tmp_path), "--name", "intr"]
    proc = subprocess.Popen([sys.executable, "-m", "gan_dist", "train", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    run = tmp_path / "intr"
    deadline = time.time() + 300
    while not (run / "checkpoints" / "epoch_0001" / "trainer_state.json").is_file():
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "Traceback" not in err
    assert "interrupted" in err and "--resume auto --name intr" in err
    from gan_dist.training.checkpoint import newest_checkpoint

    assert newest_checkpoint(run / "checkpoints") is not None  # a complete one survives
