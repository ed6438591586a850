"""slurm/train.sh and slurm/report.sh on a real one-node Slurm cluster (scripts/slurm_cluster.sh).

The module starts its own cluster (own state directory and ports, so a cluster you run by hand
is left alone) and stops it at the end. Without root or Slurm the tests skip, except in CI
(CI=true), where they fail. Jobs run 2-process CPU training on the shipped mnist-sample.

    pytest -m slurm -rA tests/test_slurm.py     # -rA shows the measured preemption timings
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "scripts" / "slurm_cluster.sh"
TRAIN = REPO / "slurm" / "train.sh"
REPORT = REPO / "slurm" / "report.sh"
IN_CI = os.environ.get("CI", "").lower() == "true"

# 2 processes of CPU training on the 5,000-digit sample; one job fits a 2-core machine.
TRAIN_ARGS = ["--cpu", "--processes", "2", "--dataset", "mnist-sample", "--d-dropout", "0",
              "--seed", "0"]
SBATCH_ARGS = ["--export=ALL", "--cpus-per-task=2", "--time=00:10:00"]


def _free_ports(count: int) -> list[int]:
    """Distinct free ports, so this cluster cannot collide with one already running."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"Slurm tests must run in CI: {reason}")
    pytest.skip(reason)


class Cluster:
    """The started cluster: environment for its clients and helpers to drive jobs."""

    def __init__(self, state_dir: Path, out_dir: Path):
        self.state_dir = state_dir
        self.out = out_dir
        venv_bin = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            "GAN_SLURM_DIR": str(state_dir),
            "SLURM_CONF": str(state_dir / "slurm.conf"),
            "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
            "GAN_PYTHON": os.environ.get("GAN_PYTHON", sys.executable),
            "GAN_OUT": str(out_dir),
        }

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=check,
                              timeout=60)

    def sbatch(self, *args: str) -> int:
        proc = self.run("sbatch", "--parsable", f"--chdir={self.out}",
                        f"--output={self.out}/%x-%j.out", *args,
                        check=False)
        assert proc.returncode == 0, f"sbatch failed: {proc.stderr}"
        return int(proc.stdout.strip().split(";")[0])

    def job(self, job_id: int) -> dict[str, str]:
        """`scontrol show job` as a dict (no accounting database here, so no sacct)."""
        proc = self.run("scontrol", "show", "job", "--oneliner", str(job_id))
        return dict(re.findall(r"(\S+?)=(\S*)", proc.stdout))

    def wait(self, job_id: int, states: set[str], timeout: float, poll: float = 0.5):
        deadline = time.monotonic() + timeout
        while True:
            info = self.job(job_id)
            if info.get("JobState") in states:
                return info
            if time.monotonic() > deadline:
                pytest.fail(f"job {job_id} not {states} after {timeout:.0f} s: {info}\n"
                            + self.log(job_id))
            time.sleep(poll)

    def log(self, job_id: int) -> str:
        logs = sorted(self.out.glob(f"*-{job_id}.out"))
        return "\n".join(f"--- {p.name}\n{p.read_text()}" for p in logs) or "(no job log)"


@pytest.fixture(scope="module")
def slurm():
    if os.geteuid() != 0:
        _unavailable("starting slurmd needs root")
    missing = [c for c in ("sbatch", "scontrol", "slurmctld", "slurmd", "munged")
               if not (shutil.which(c) or Path("/usr/sbin", c).exists())]
    if missing:
        _unavailable(f"{', '.join(missing)} not installed (apt-get install slurm-wlm munge)")
    # Under /tmp and world-readable: munged (user munge) must reach its socket directory.
    root = Path(tempfile.mkdtemp(prefix="gan-slurm-test-", dir="/tmp"))
    root.chmod(0o755)
    cluster = Cluster(root / "cluster", root / "runs")
    cluster.out.mkdir()
    ctld_port, d_port = _free_ports(2)
    cluster.env["GAN_SLURM_CTLD_PORT"] = str(ctld_port)
    cluster.env["GAN_SLURM_D_PORT"] = str(d_port)
    cluster.env["GAN_SLURM_CPUS"] = str(max(2, os.cpu_count() or 1))  # jobs ask for 2
    start = subprocess.run([str(CLUSTER), "start"], env=cluster.env, check=False,
                           capture_output=True, text=True, timeout=120)
    try:
        if start.returncode != 0:
            _unavailable(f"scripts/slurm_cluster.sh start failed: {start.stderr.strip()}")
        yield cluster
    finally:
        subprocess.run([str(CLUSTER), "stop"], env=cluster.env, check=False,
                       capture_output=True, timeout=120)
        if not os.environ.get("GAN_SLURM_KEEP"):  # keep logs and runs for a post-mortem
            shutil.rmtree(root, ignore_errors=True)


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    # A line being appended right now may be incomplete; only whole lines count.
    lines = path.read_text().splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.endswith("\n") and line.strip()]


@pytest.fixture(scope="module")
def completed_job(slurm):
    """A 3-epoch, 2-process job run to completion; shared with the report test."""
    job_id = slurm.sbatch(*SBATCH_ARGS, str(TRAIN), *TRAIN_ARGS, "--epochs", "3")
    info = slurm.wait(job_id, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL",
                               "OUT_OF_MEMORY"}, timeout=240)
    return job_id, info


def test_train_job_runs_to_completion(slurm, completed_job):
    job_id, info = completed_job
    log = slurm.log(job_id)
    assert info["JobState"] == "COMPLETED", log
    assert info["ExitCode"] == "0:0", log
    assert info["Restarts"] == "0"
    run_dir = slurm.out / f"slurm-{job_id}"  # train.sh's default run name
    metrics = read_metrics(run_dir)
    assert [m["epoch"] for m in metrics] == [1, 2, 3], log
    assert {m["world_size"] for m in metrics} == {2}
    assert (run_dir / "generator.safetensors").stat().st_size > 0
    assert not (slurm.out / f".gan-stop-{job_id}").exists()
    assert "training finished" in log


def test_usr1_requeues_and_resumes_every_epoch_once(slurm):
    # A larger batch makes epochs short (25 steps) while leaving time to signal mid-run.
    epochs = 6
    job_id = slurm.sbatch(*SBATCH_ARGS, str(TRAIN), *TRAIN_ARGS, "--epochs", str(epochs),
                          "--batch-size", "200")
    run_dir = slurm.out / f"slurm-{job_id}"

    # Preempt once the second epoch is on disk, as Slurm would before a time limit.
    deadline = time.monotonic() + 180
    while len(read_metrics(run_dir)) < 2:
        state = slurm.job(job_id).get("JobState")
        if state not in ("PENDING", "RUNNING", "CONFIGURING"):
            pytest.fail(f"job {job_id} ended ({state}) before epoch 2\n" + slurm.log(job_id))
        if time.monotonic() > deadline:
            pytest.fail("no epoch 2 after 180 s\n" + slurm.log(job_id))
        time.sleep(0.2)
    t_signal = time.monotonic()
    epochs_at_signal = len(read_metrics(run_dir))
    slurm.run("scancel", "--batch", "--signal=USR1", str(job_id))

    # train.sh checkpoints, requeues; the job waits for its begin time: skip that wait.
    info = slurm.wait(job_id, {"PENDING", "COMPLETED", "FAILED", "CANCELLED"}, timeout=120,
                      poll=0.2)
    t_requeued = time.monotonic()
    assert info["JobState"] == "PENDING", slurm.log(job_id)
    assert info["Restarts"] == "1"
    epochs_before = [m["epoch"] for m in read_metrics(run_dir)]
    assert 2 <= len(epochs_before) < epochs, "the job finished before it was preempted"
    begin_delay = info.get("Reason") == "BeginTime"
    # Slurm delays a requeued job's start (about 2 min) so that slurmd forgets the revoked
    # credential of the first run; a restart in the same second fails with "Job credential
    # revoked". A few seconds are enough on one node. `StartTime` is scontrol's name for the
    # begin time (22.05 rejects `BeginTime=`).
    time.sleep(3)
    slurm.run("scontrol", "update", f"JobId={job_id}", "StartTime=now")

    slurm.wait(job_id, {"RUNNING", "COMPLETED", "FAILED"}, timeout=60, poll=0.2)
    t_running = time.monotonic()
    while len(read_metrics(run_dir)) <= len(epochs_before):
        state = slurm.job(job_id).get("JobState")
        if state != "RUNNING" or time.monotonic() > t_running + 120:
            pytest.fail(f"no epoch after the restart (job {state})\n" + slurm.log(job_id))
        time.sleep(0.2)
    t_resumed = time.monotonic()

    info = slurm.wait(job_id, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, timeout=240)
    log = slurm.log(job_id)
    assert info["JobState"] == "COMPLETED", log
    assert info["Restarts"] == "1"
    metrics = read_metrics(run_dir)
    assert [m["epoch"] for m in metrics] == list(range(1, epochs + 1)), log
    assert {m["world_size"] for m in metrics} == {2}
    assert (run_dir / "generator.safetensors").exists()
    assert "SIGUSR1" in log and "requeueing" in log and "training finished" in log

    print(f"\npreempt-requeue-resume of job {job_id} (Restarts={info['Restarts']}): "
          f"USR1 after epoch {epochs_at_signal}, stopped after epoch {len(epochs_before)}; "
          f"signal -> requeued {t_requeued - t_signal:.1f} s, requeued -> running "
          f"{t_running - t_requeued:.1f} s (begin-time delay "
          f"{'cut to 3 s' if begin_delay else 'none'}), "
          f"running -> first resumed epoch {t_resumed - t_running:.1f} s; "
          f"signal -> first resumed epoch {t_resumed - t_signal:.1f} s")


def test_scancel_checkpoints_and_stops_without_requeue(slurm):
    job_id = slurm.sbatch(*SBATCH_ARGS, str(TRAIN), *TRAIN_ARGS, "--epochs", "6",
                          "--batch-size", "200")
    run_dir = slurm.out / f"slurm-{job_id}"
    deadline = time.monotonic() + 180
    while not read_metrics(run_dir):
        if time.monotonic() > deadline or slurm.job(job_id).get("JobState") not in (
                "PENDING", "RUNNING", "CONFIGURING"):
            pytest.fail("no first epoch\n" + slurm.log(job_id))
        time.sleep(0.2)
    slurm.run("scancel", str(job_id))  # SIGTERM to the script and every process

    # Slurm kills what is left after KillWait (30 s): the checkpoint must come before that.
    info = slurm.wait(job_id, {"CANCELLED", "COMPLETED", "FAILED", "PENDING"}, timeout=90)
    time.sleep(2)  # the script's last log lines
    log = slurm.log(job_id)
    assert info["JobState"] == "CANCELLED", log
    assert info["Restarts"] == "0"
    assert "SIGTERM" in log and "not requeueing" in log, log
    epochs_done = [m["epoch"] for m in read_metrics(run_dir)]
    assert epochs_done == list(range(1, len(epochs_done) + 1)) and len(epochs_done) < 6
    assert any((run_dir / "checkpoints").iterdir()), "no checkpoint after SIGTERM"
    assert slurm.job(job_id)["JobState"] == "CANCELLED"  # and it stays that way: no requeue


def _gan_report_exists() -> bool:
    proc = subprocess.run([sys.executable, "-m", "gan_dist", "report", "--help"],
                          check=False, capture_output=True, text=True)
    return proc.returncode == 0


def test_report_job_after_training(slurm, completed_job):
    if not _gan_report_exists():
        pytest.skip("`gan report` is not implemented yet")
    train_id, info = completed_job
    assert info["JobState"] == "COMPLETED"
    # No run directory given: report.sh finds runs/slurm-<train job> from the dependency.
    job_id = slurm.sbatch("--export=ALL", f"--dependency=afterok:{train_id}", str(REPORT))
    info = slurm.wait(job_id, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, timeout=180)
    assert info["JobState"] == "COMPLETED", slurm.log(job_id)
    pdf = slurm.out / f"slurm-{train_id}" / "report.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-", slurm.log(job_id)
