"""Long runs (issue 13): TensorBoard event files read back, stops within one step with a
mid-epoch checkpoint, time-based checkpoints, kill -9 after a mid-epoch checkpoint, and the
divergence guard. Every resume is compared with an uninterrupted run, bit for bit."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import FAST, gan, generator_tensors, kill_9_once, max_abs_diff, metrics

pytestmark = pytest.mark.slow
BASE = [*FAST, "--epochs", "3", "--seed", "7"]  # 10 steps of 500 per epoch, dropout 0.3 on


def events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def same_run(a: Path, b: Path) -> None:
    """Same per-epoch rows (timings aside) and the same final generator, exactly."""
    keys = ("epoch", "g_loss", "d_loss", "d_real", "d_fake", "steps")
    assert [[r[k] for k in keys] for r in metrics(a)] == [[r[k] for k in keys] for r in metrics(b)]
    assert max_abs_diff(generator_tensors(a / "generator.safetensors"),
                        generator_tensors(b / "generator.safetensors")) == 0.0


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    gan("train", *BASE, "--out", out, "--name", "whole")
    return out / "whole"


def scalars(run: Path) -> dict[str, list[int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    steps = {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    steps["images/samples"] = [e.step for e in acc.Images("samples")]
    return steps


def test_stop_mid_epoch_checkpoints_there_and_resumes_exactly_with_tensorboard_curves_continued(tmp_path, whole):
    log = ["--log-with", "tensorboard", "--log-every", "2", "--sample-epochs", "1,2"]
    proc = gan("train", *BASE, *log, "--out", tmp_path, "--name", "s", "--fault", "0:2:3:stop", check=False)
    run = tmp_path / "s"
    assert proc.returncode == 75, proc.stderr
    # asked before step 3 of epoch 2 (0-based), agreed at the next sync point: after that step
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_0001", "epoch_0002_step_000004"]
    state = json.loads((run / "checkpoints" / "epoch_0002_step_000004" / "trainer_state.json").read_text())
    assert (state["epoch"], state["step"], state["partial"]["steps_done"]) == (1, 4, 4)
    assert [r["epoch"] for r in metrics(run)] == [1]
    stop = events(run)[-1]
    assert (stop["event"], stop["epoch"], stop["step"], stop["reason"]) == ("stop", 1, 4, "--fault stop")
    before = scalars(run)
    assert before["loss/d"] == [2, 4, 6, 8, 10, 12, 14]  # every 2 steps, epoch 2 cut at step 14

    gan("train", *BASE, *log, "--out", tmp_path, "--name", "s", "--resume", "auto")
    same_run(whole, run)
    assert [e["event"] for e in events(run)] == ["start", "stop", "resume", "finish"]
    assert events(run)[2]["step"] == 4
    after = scalars(run)
    for tag, steps in after.items():
        assert steps == sorted(set(steps)), f"{tag}: duplicated or backwards steps {steps}"
    assert after["loss/d"] == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30]  # 14: before the stop
    assert after["epoch/g_loss"] == [10, 20, 30]
    assert after["images/samples"] == [10, 20, 30]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    rows = metrics(run)
    assert [round(e.value, 5) for e in acc.Scalars("epoch/g_loss")] == [round(r["g_loss"], 5) for r in rows]


def test_kill_9_after_a_mid_epoch_checkpoint_resumes_exactly(tmp_path, whole):
    # a tiny --checkpoint-minutes checkpoints at nearly every step (each sync point)
    checkpoints = tmp_path / "k" / "checkpoints"
    kill_9_once(["train", *BASE, "--checkpoint-minutes", "0.0001", "--keep-checkpoints", "3", "--out", tmp_path,
                 "--name", "k"], "epoch_0002_step_00000[5-9]/trainer_state.json", checkpoints)
    names = sorted(p.name for p in checkpoints.iterdir() if not p.name.startswith("."))
    assert any("_step_" in n for n in names), names
    # --keep-checkpoints bounds the disk. The newest is renamed into place before the oldest is
    # dropped (never fewer than 3 complete ones), so a kill between the two leaves one extra,
    # which the next checkpoint of the resumed run prunes.
    assert len(names) <= 4, names
    gan("train", *BASE, "--checkpoint-minutes", "0.0001", "--keep-checkpoints", "3", "--out", tmp_path,
        "--name", "k", "--resume", "auto")
    same_run(whole, tmp_path / "k")
    assert len([p for p in checkpoints.iterdir() if not p.name.startswith(".")]) <= 3


def test_sigusr1_on_two_processes_checkpoints_within_a_step_and_resumes_exactly(tmp_path):
    common = [*BASE, "--processes", "2", "--out", str(tmp_path)]
    gan("train", *common, "--name", "ref")
    proc = subprocess.Popen([sys.executable, "-m", "gan_dist", "train", *map(str, common), "--name", "u",
                             "--epochs", "30"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "u"
    deadline = time.time() + 300
    while not (run / "metrics.jsonl").is_file() or not metrics(run):
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
        time.sleep(0.02)
    time.sleep(0.4)  # somewhere inside epoch 2 (an epoch takes ~1.5 s here)
    tic = time.time()
    proc.send_signal(signal.SIGUSR1)
    _, err = proc.communicate(timeout=120)
    print(f"SIGUSR1 -> exit 75 in {time.time() - tic:.2f} s")
    assert proc.returncode == 75, err
    mid = [p.name for p in (run / "checkpoints").iterdir() if "_step_" in p.name]
    assert len(mid) == 1, sorted(p.name for p in (run / "checkpoints").iterdir())
    stop = events(run)[-1]
    assert stop["event"] == "stop" and stop["reason"] == "SIGUSR1" and stop["world_size"] == 2
    # finish the 3-epoch run it began as, on 2 processes: exactly the uninterrupted 2-process run
    gan("train", *common, "--name", "u", "--epochs", "3", "--resume", "auto")
    same_run(tmp_path / "ref", run)


def test_a_nan_loss_stops_at_once_and_the_newest_good_checkpoint_resumes(tmp_path, whole):
    proc = gan("train", *BASE, "--out", tmp_path, "--name", "n", "--fault", "0:2:3:nan", check=False)
    run = tmp_path / "n"
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len([line for line in lines if line.startswith("error:")]) == 1 and "Traceback" not in proc.stderr
    message = lines[-1]
    good = run / "checkpoints" / "epoch_0001"
    assert "diverged" in message and "epoch 2, step 4 of 10" in message and str(good) in message
    assert "--allow-changes --lr 0.0001" in message
    # nothing diverged was published: no metrics row, checkpoint, sample or generator of epoch 2
    assert [r["epoch"] for r in metrics(run)] == [1]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_0001"]
    assert events(run)[-1]["event"] == "diverged"
    assert json.loads((run / "status.json").read_text())["state"] == "diverged"
    # the good checkpoint continues, here without the fault: exactly the uninterrupted run
    gan("train", *BASE, "--out", tmp_path, "--name", "n", "--resume", str(good))
    same_run(whole, run)


def test_allow_changes_lets_a_resume_lower_the_learning_rate(tmp_path):
    common = [*FAST, "--epochs", "1", "--out", tmp_path, "--name", "lr"]
    gan("train", *common)
    refused = gan("train", *FAST, "--epochs", "2", "--lr", "1e-4", "--out", tmp_path, "--name", "lr",
                  "--resume", "auto", check=False)
    assert refused.returncode == 2 and "or pass --allow-changes" in refused.stderr
    refused = gan("train", *FAST, "--epochs", "2", "--latent-dim", "64", "--allow-changes", "--out", tmp_path,
                  "--name", "lr", "--resume", "auto", check=False)
    assert refused.returncode == 2 and "--latent-dim is 100" in refused.stderr  # weights' shape: never
    gan("train", *FAST, "--epochs", "2", "--lr", "1e-4", "--allow-changes", "--out", tmp_path, "--name", "lr",
        "--resume", "auto")
    config = json.loads((tmp_path / "lr" / "config.json").read_text())
    assert config["lr"] == 1e-4 and [r["epoch"] for r in metrics(tmp_path / "lr")] == [1, 2]


def test_unknown_or_missing_tracker_is_one_line(tmp_path):
    proc = gan("train", *FAST, "--log-with", "tensorbord", "--out", tmp_path, "--name", "t", check=False)
    assert proc.returncode == 2 and "did you mean 'tensorboard'" in proc.stderr
    proc = gan("train", *FAST, "--log-with", "wandb", "--out", tmp_path, "--name", "t", check=False)
    assert proc.returncode == 2 and "pip install wandb" in proc.stderr
    assert not (tmp_path / "t").exists()
