"""slurm/train.sh and slurm/report.sh on a real two-node Slurm cluster (scripts/slurm_cluster.sh).

One cluster for the module: nodes n1 and n2, both slurmds on this machine at 127.0.0.1, 2 CPUs
each, with its own state directory and ports (a cluster you run by hand is left alone); stopped
at the end. Node names that are not host names make the rendezvous address come from Slurm.
Without root or Slurm the tests skip, except in CI (CI=true), where they fail.

Jobs are shared between tests (module fixtures), and tiny: mnist-sample, global batch 500
(10 steps an epoch), 3 epochs, one CPU process per node, dropout on (both ranks are seeded).
  - one 1-node job with 2 processes (the single-node path);
  - A, B: two 2-node jobs queued one after the other (--exclusive). A runs uninterrupted, B is
    preempted with SIGUSR1, requeued and resumed; a report job waits for B (afterok);
  - C, D: two 2-node jobs at the same time (different master ports); C is cancelled, D loses
    its node-2 worker to kill -9 and is resumed as D2;
  - E: a node-2 worker stopped (SIGSTOP) with a short GAN_COLLECTIVE_TIMEOUT: the job ends by
    the timeout instead of hanging;
  - F: a conditional dcgan (EMA, synchronised BatchNorm) on both nodes, equal to one local process
    up to summation order.
B and D2 must end with generator weights equal to A's, exactly.

    pytest -m slurm -rA tests/test_slurm.py     # -rA shows the measured timings
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

from gan_dist.training.checkpoint import newest_checkpoint

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.multiproc]

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "scripts" / "slurm_cluster.sh"
TRAIN = REPO / "slurm" / "train.sh"
REPORT = REPO / "slurm" / "report.sh"
IN_CI = os.environ.get("CI", "").lower() == "true"

EPOCHS = 3
TRAIN_ARGS = ["--cpu", "--dataset", "mnist-sample", "--batch-size", "500", "--seed", "0",
              "--epochs", str(EPOCHS)]
TWO_NODES = ["--export=ALL", "--nodes=2", "--cpus-per-task=1", "--time=00:10:00"]
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}
ALIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING"}
# Job E: a silent peer is given up after this (GAN_COLLECTIVE_TIMEOUT, default 600 s), the
# other node's launcher killed this much later (GAN_SRUN_WAIT, default 60 s).
SILENT_TIMEOUT, SILENT_SRUN_WAIT = 15, 5


def _free_ports(count: int, consecutive: int = 1) -> list[int]:
    """`count` free ports; the last `consecutive` of them in a row (one slurmd port per node)."""
    for _ in range(100):
        sockets = [socket.socket() for _ in range(count)]
        try:
            for s in sockets[: count - consecutive + 1]:
                s.bind(("127.0.0.1", 0))
            base = sockets[count - consecutive].getsockname()[1]
            for i, s in enumerate(sockets[count - consecutive + 1:], start=1):
                s.bind(("127.0.0.1", base + i))
            return [s.getsockname()[1] for s in sockets]
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no block of free ports")


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
            **{k: v for k, v in os.environ.items() if not k.startswith(("SLURM", "GAN_NAME"))},
            "GAN_SLURM_DIR": str(state_dir),
            "SLURM_CONF": str(state_dir / "slurm.conf"),
            "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
            "GAN_PYTHON": os.environ.get("GAN_PYTHON", sys.executable),
            "GAN_OUT": str(out_dir),
        }

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=check,
                              timeout=60)

    def sbatch(self, *args: str, **env: str) -> int:
        proc = subprocess.run(["sbatch", "--parsable", f"--chdir={self.out}",
                               f"--output={self.out}/%x-%j.out", *map(str, args)],
                              env={**self.env, **env}, capture_output=True, text=True,
                              check=False, timeout=60)
        assert proc.returncode == 0, f"sbatch failed: {proc.stderr}"
        return int(proc.stdout.strip().split(";")[0])

    def job(self, job_id: int) -> dict[str, str]:
        """`scontrol show job` as a dict (no accounting database here, so no sacct)."""
        proc = self.run("scontrol", "show", "job", "--oneliner", str(job_id))
        return dict(re.findall(r"(\S+?)=(\S*)", proc.stdout))

    def state(self, job_id: int) -> str:
        return self.job(job_id).get("JobState", "?")

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

    def wait_epochs(self, job_id: int, run_dir: Path, epochs: int, timeout: float) -> float:
        """Wait until `epochs` rows are in metrics.jsonl while the job lives; returns the time."""
        deadline = time.monotonic() + timeout
        while len(read_metrics(run_dir)) < epochs:
            state = self.state(job_id)
            if state not in ALIVE:
                pytest.fail(f"job {job_id} ended ({state}) before epoch {epochs}\n" + self.log(job_id))
            if time.monotonic() > deadline:
                pytest.fail(f"no epoch {epochs} after {timeout:.0f} s\n" + self.log(job_id))
            time.sleep(0.2)
        return time.monotonic()

    def log(self, job_id: int) -> str:
        logs = sorted(self.out.glob(f"*-{job_id}.out"))
        return "\n".join(f"--- {p.name}\n{p.read_text()}" for p in logs) or "(no job log)"

    def run_dir(self, job_id: int) -> Path:
        return self.out / f"slurm-{job_id}"  # train.sh's default run name


def worker_pid(job_id: int, node: str) -> int:
    """The training process (not the launcher) of `job_id` on Slurm node `node`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (b"gan_dist.training.worker" in cmdline and f"SLURM_JOB_ID={job_id}".encode() in environ
                and f"SLURMD_NODENAME={node}".encode() in environ):
            return int(entry.name)
    pytest.fail(f"no training process of job {job_id} on node {node}")


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    # A line being appended right now may be incomplete; only whole lines count.
    lines = path.read_text().splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.endswith("\n") and line.strip()]


def wait_checkpoint(run_dir: Path, timeout: float = 60) -> None:
    """A kill after an epoch's metrics row but before any checkpoint would leave nothing to
    resume from."""
    deadline = time.monotonic() + timeout
    while newest_checkpoint(run_dir / "checkpoints") is None:
        assert time.monotonic() < deadline, f"no complete checkpoint in {run_dir}"
        time.sleep(0.2)


def saved_by_both_ranks(run_dir: Path) -> bool:
    """The newest complete checkpoint holds both processes' states (Accelerate's save_state)."""
    newest = newest_checkpoint(run_dir / "checkpoints")
    names = {p.name for p in newest.iterdir()} if newest else set()
    return {"model.safetensors", "model_1.safetensors", "random_states_0.pkl",
            "random_states_1.pkl"} <= names


def max_weight_diff(a: Path, b: Path) -> float:
    from safetensors.torch import load_file

    wa, wb = load_file(a / "generator.safetensors"), load_file(b / "generator.safetensors")
    assert wa.keys() == wb.keys()
    return max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)


def both_nodes_exited(log: str, code: int) -> bool:
    return all(f"{n}: task {t}: Exited with exit code {code}" in log for n, t in (("n1", 0), ("n2", 1)))


# ---- the cluster ----------------------------------------------------------------------------
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
    ctld_port, d_port, _ = _free_ports(3, consecutive=2)
    cluster.env["GAN_SLURM_CTLD_PORT"] = str(ctld_port)
    cluster.env["GAN_SLURM_D_PORT"] = str(d_port)
    # 2 CPUs a node: two 1-CPU-per-node jobs fit side by side, as does a 2-process 1-node job.
    start = subprocess.run([str(CLUSTER), "start", "--nodes", "2", "--cpus-per-node", "2"],
                           env=cluster.env, check=False, capture_output=True, text=True,
                           timeout=120)
    try:
        if start.returncode != 0:
            _unavailable(f"scripts/slurm_cluster.sh start failed: {start.stderr.strip()}")
        yield cluster
    finally:
        subprocess.run([str(CLUSTER), "stop"], env=cluster.env, check=False,
                       capture_output=True, timeout=120)
        if not os.environ.get("GAN_SLURM_KEEP"):  # keep logs and runs for a post-mortem
            shutil.rmtree(root, ignore_errors=True)


def test_cluster_has_two_idle_nodes_at_one_address(slurm):
    status = slurm.run(str(CLUSTER), "status", check=False)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "node n1: idle" in status.stdout and "node n2: idle" in status.stdout
    nodes = slurm.run("sinfo", "-h", "-N", "-o", "%N %o %c").stdout.split("\n")
    assert sorted(filter(None, nodes)) == ["n1 127.0.0.1 2", "n2 127.0.0.1 2"]
    # Asking a running cluster for another shape is refused, not half-applied.
    again = slurm.run(str(CLUSTER), "start", "--nodes", "3", check=False)
    assert again.returncode == 1 and "already runs" in again.stderr


def test_one_node_job_with_two_processes(slurm):
    job_id = slurm.sbatch("--export=ALL", "--nodes=1", "--cpus-per-task=2", "--time=00:10:00",
                          TRAIN, *TRAIN_ARGS, "--epochs", "2", "--processes", "2")
    info = slurm.wait(job_id, ENDED, timeout=240)
    log = slurm.log(job_id)
    assert (info["JobState"], info["ExitCode"]) == ("COMPLETED", "0:0"), log
    run_dir = slurm.run_dir(job_id)
    assert [(m["epoch"], m["world_size"]) for m in read_metrics(run_dir)] == [(1, 2), (2, 2)]
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["world_size"], config["env"]["num_nodes"]) == (2, 1)
    assert "training finished" in log
    assert not (slurm.out / f".gan-stop-{job_id}").exists()


# ---- A and B: queued one after the other; B preempted, requeued, resumed ------------------
@pytest.fixture(scope="module")
def queued_pair(slurm):
    t_submit = time.monotonic()
    a = slurm.sbatch(*TWO_NODES, "--exclusive", TRAIN, *TRAIN_ARGS)
    b = slurm.sbatch(*TWO_NODES, "--exclusive", TRAIN, *TRAIN_ARGS)
    report = slurm.sbatch("--export=ALL", f"--dependency=afterok:{b}", REPORT)
    t = {"a_first_epoch": slurm.wait_epochs(a, slurm.run_dir(a), 1, timeout=180) - t_submit}
    b_while_a_runs = slurm.job(b)
    a_info = slurm.wait(a, ENDED, timeout=240)

    # B: preempt once its first epoch is on disk, as Slurm would before a time limit.
    run_b = slurm.run_dir(b)
    t_signal = slurm.wait_epochs(b, run_b, 1, timeout=180)
    slurm.run("scancel", "--batch", "--signal=USR1", str(b))
    requeued = slurm.wait(b, {"PENDING"} | ENDED, timeout=120, poll=0.2)
    t["usr1_requeued"] = time.monotonic() - t_signal
    epochs_before = [m["epoch"] for m in read_metrics(run_b)]
    stopped_checkpoint_of_both = saved_by_both_ranks(run_b)
    # Slurm delays a requeued job's start (BeginTime) so that slurmd forgets the revoked
    # credential of the first run; a start within ~1 s fails with "Job credential revoked",
    # 3 s is enough here. `StartTime` is scontrol's name for the begin time in 22.05.
    time.sleep(3)
    slurm.run("scontrol", "update", f"JobId={b}", "StartTime=now")
    slurm.wait(b, {"RUNNING"} | ENDED, timeout=60, poll=0.2)
    t["usr1_running"] = time.monotonic() - t_signal
    # A new row needs both nodes (the epoch's losses are reduced over both processes).
    t["usr1_resumed"] = slurm.wait_epochs(b, run_b, len(epochs_before) + 1, timeout=180) - t_signal
    b_info = slurm.wait(b, ENDED, timeout=240)
    report_info = slurm.wait(report, ENDED, timeout=180)
    print(f"\n2-node jobs: submit -> first epoch {t['a_first_epoch']:.1f} s; USR1 after epoch 1 -> "
          f"requeued {t['usr1_requeued']:.1f} s -> running again {t['usr1_running']:.1f} s "
          f"(3 s of it the forced wait) -> first resumed epoch on both nodes "
          f"{t['usr1_resumed']:.1f} s; stopped after epochs {epochs_before}")
    return {"a": a, "b": b, "report": report, "a_info": a_info, "b_info": b_info,
            "b_while_a_runs": b_while_a_runs, "requeued": requeued, "epochs_before": epochs_before,
            "stopped_checkpoint_of_both": stopped_checkpoint_of_both,
            "report_info": report_info, "times": t}


def test_two_node_job_trains_one_run(slurm, queued_pair):
    a, info = queued_pair["a"], queued_pair["a_info"]
    log = slurm.log(a)
    assert (info["JobState"], info["ExitCode"], info["Restarts"]) == ("COMPLETED", "0:0", "0"), log
    assert info["NodeList"] == "n[1-2]"
    run_dir = slurm.run_dir(a)
    metrics = read_metrics(run_dir)
    # Every epoch once: a second writer (rank 1) would have appended every row twice.
    assert [(m["epoch"], m["world_size"]) for m in metrics] == [(e, 2) for e in range(1, EPOCHS + 1)]
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["world_size"], config["nodes"], config["env"]["num_nodes"]) == (2, 2, 2)
    # n1 is no host name: the address is n1's NodeAddr; the port is the job's own.
    assert (config["master_addr"], config["master_port"]) == ("127.0.0.1", 10000 + a % 20000)
    assert log.count(f"rendezvous at 127.0.0.1:{10000 + a % 20000} (head node n1)") == 1, log
    assert saved_by_both_ranks(run_dir)
    assert "training finished" in log and "error" not in log.lower(), log


def test_two_node_jobs_queued_one_after_the_other_both_finish(slurm, queued_pair):
    waiting = queued_pair["b_while_a_runs"]
    assert (waiting["JobState"], waiting["Reason"]) == ("PENDING", "Resources"), waiting
    assert queued_pair["a_info"]["JobState"] == queued_pair["b_info"]["JobState"] == "COMPLETED"


def test_usr1_on_two_nodes_requeues_and_resumes_exactly(slurm, queued_pair):
    b, info = queued_pair["b"], queued_pair["b_info"]
    log = slurm.log(b)
    assert queued_pair["requeued"]["JobState"] == "PENDING", log
    assert (info["JobState"], info["Restarts"], info["NodeList"]) == ("COMPLETED", "1", "n[1-2]")
    # The first life stopped early, after a checkpoint on both nodes (each launcher exits 75).
    assert 1 <= len(queued_pair["epochs_before"]) < EPOCHS
    first_life = log.split(f"job {b} restart 1")[0]
    assert both_nodes_exited(first_life, 75), log
    assert queued_pair["stopped_checkpoint_of_both"]
    assert "SIGUSR1" in first_life and "requeueing" in first_life
    assert f"job {b} restart 1 (max 3) on n[1-2]" in log and "training finished" in log
    run_b = slurm.run_dir(b)
    assert [(m["epoch"], m["world_size"]) for m in read_metrics(run_b)] == \
        [(e, 2) for e in range(1, EPOCHS + 1)]
    # Preempted and resumed = uninterrupted, bit for bit (CPU, both ranks seeded).
    assert max_weight_diff(run_b, slurm.run_dir(queued_pair["a"])) == 0.0


def test_report_job_waits_for_the_requeued_job(slurm, queued_pair):
    b, info = queued_pair["b"], queued_pair["report_info"]
    assert info["JobState"] == "COMPLETED", slurm.log(queued_pair["report"])
    pdf = slurm.run_dir(b) / "report.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    # Rendered after the second life, not after the first life's requeue.
    assert f"slurm-{b}: {EPOCHS} of {EPOCHS} epochs" in text and "world size 2" in text


# ---- C and D: side by side; C cancelled, D loses a node's worker and is resumed ----------
@pytest.fixture(scope="module")
def side_by_side(slurm, queued_pair):
    c = slurm.sbatch(*TWO_NODES, TRAIN, *TRAIN_ARGS)
    d = slurm.sbatch(*TWO_NODES, TRAIN, *TRAIN_ARGS)
    slurm.wait_epochs(c, slurm.run_dir(c), 1, timeout=240)
    slurm.wait_epochs(d, slurm.run_dir(d), 1, timeout=240)
    states = (slurm.state(c), slurm.state(d))  # both trained an epoch, both still running
    wait_checkpoint(slurm.run_dir(d))
    slurm.run("scancel", str(c))  # SIGTERM to the script and every process of C

    victim = worker_pid(d, "n2")
    t_kill = time.monotonic()
    os.kill(victim, 9)
    d_info = slurm.wait(d, ENDED, timeout=120, poll=0.2)
    kill_to_end = time.monotonic() - t_kill
    # Slurm kills what is left of C after KillWait (30 s): the checkpoint must come before.
    c_info = slurm.wait(c, ENDED | {"PENDING"}, timeout=90)
    time.sleep(1)  # the scripts' last log lines
    print(f"\nkill -9 of job {d}'s worker on n2 -> job ended {kill_to_end:.1f} s")
    return {"c": c, "d": d, "states": states, "c_info": c_info, "d_info": d_info,
            "kill_to_end": kill_to_end}


def test_concurrent_jobs_get_different_master_ports(slurm, side_by_side):
    c, d = side_by_side["c"], side_by_side["d"]
    assert side_by_side["states"] == ("RUNNING", "RUNNING")
    ports = [json.loads((slurm.run_dir(j) / "config.json").read_text())["master_port"]
             for j in (c, d)]
    assert ports == [10000 + c % 20000, 10000 + d % 20000] and ports[0] != ports[1]
    for job_id, port in zip((c, d), ports):
        assert f"rendezvous at 127.0.0.1:{port} (head node n1)" in slurm.log(job_id)


def test_scancel_checkpoints_both_nodes_and_does_not_requeue(slurm, side_by_side):
    c, info = side_by_side["c"], side_by_side["c_info"]
    log = slurm.log(c)
    assert (info["JobState"], info["Restarts"]) == ("CANCELLED", "0"), log
    assert "SIGTERM" in log and "not requeueing" in log and both_nodes_exited(log, 75), log
    run_dir = slurm.run_dir(c)
    epochs = [m["epoch"] for m in read_metrics(run_dir)]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) < EPOCHS
    assert saved_by_both_ranks(run_dir), "no checkpoint of both nodes after SIGTERM"
    assert slurm.state(c) == "CANCELLED"  # and it stays that way: no requeue


@pytest.fixture(scope="module")
def resumed_and_silent(slurm, side_by_side):
    """D2 resumes D's run; E, at the same time, loses contact with its node-2 worker."""
    d_run = slurm.run_dir(side_by_side["d"])
    d2 = slurm.sbatch(*TWO_NODES, TRAIN, *TRAIN_ARGS, GAN_NAME=d_run.name)
    e = slurm.sbatch(*TWO_NODES, TRAIN, *TRAIN_ARGS,
                     GAN_COLLECTIVE_TIMEOUT=str(SILENT_TIMEOUT), GAN_SRUN_WAIT=str(SILENT_SRUN_WAIT))
    slurm.wait_epochs(e, slurm.run_dir(e), 1, timeout=240)
    t_stop = time.monotonic()
    os.kill(worker_pid(e, "n2"), 19)  # SIGSTOP: alive, sockets open, silent
    e_info = slurm.wait(e, ENDED, timeout=180, poll=0.5)
    stop_to_end = time.monotonic() - t_stop
    print(f"\nSIGSTOP of job {e}'s worker on n2 -> job ended {stop_to_end:.1f} s "
          f"(GAN_COLLECTIVE_TIMEOUT={SILENT_TIMEOUT}, GAN_SRUN_WAIT={SILENT_SRUN_WAIT})")
    d2_info = slurm.wait(d2, ENDED, timeout=240)
    return {"d2": d2, "d2_info": d2_info, "e": e, "e_info": e_info, "stop_to_end": stop_to_end}


def test_killed_worker_ends_the_job_with_its_error_once_then_resumes(slurm, side_by_side,
                                                                     resumed_and_silent,
                                                                     queued_pair):
    d, info = side_by_side["d"], side_by_side["d_info"]
    log = slurm.log(d)
    assert (info["JobState"], info["Restarts"]) == ("FAILED", "0"), log
    # Sockets of a killed process close at once: the job ends in seconds, not after the 600 s
    # collective timeout (generous bound: the machine is shared).
    assert side_by_side["kill_to_end"] < 60, log
    cause = "error: process 1 on node n2 was killed by SIGKILL"
    assert log.count(cause) == 1, log
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    # Anything else is node 1's echo, and says so.
    assert all(line.startswith(cause) or "stopped because another process" in line
               for line in errors), log
    assert "Traceback" not in log and "training failed" in log

    # Resumed from its newest checkpoint by a new job on the same run (GAN_NAME): every
    # epoch once, and the same weights as the uninterrupted run.
    d2, info = resumed_and_silent["d2"], resumed_and_silent["d2_info"]
    assert info["JobState"] == "COMPLETED", slurm.log(d2)
    run_dir = slurm.run_dir(d)
    assert [(m["epoch"], m["world_size"]) for m in read_metrics(run_dir)] == \
        [(e, 2) for e in range(1, EPOCHS + 1)]
    assert max_weight_diff(run_dir, slurm.run_dir(queued_pair["a"])) == 0.0


def test_silent_node_ends_the_job_after_the_collective_timeout(slurm, resumed_and_silent):
    """A process that stops answering without dying (here SIGSTOP; or a node that lost power):
    the others give up after GAN_COLLECTIVE_TIMEOUT, srun kills the rest GAN_SRUN_WAIT later."""
    e, info = resumed_and_silent["e"], resumed_and_silent["e_info"]
    log = slurm.log(e)
    assert info["JobState"] == "FAILED", log
    assert "process 0 on node n1 stopped because another process of the run did not answer" in log
    assert "n2: task 1: Killed" in log, log
    assert SILENT_TIMEOUT <= resumed_and_silent["stop_to_end"] < SILENT_TIMEOUT + SILENT_SRUN_WAIT + 60


# ---- F: a conditional dcgan with EMA and synchronised BatchNorm on both nodes ---------------
DCGAN_ARGS = ["--cpu", "--dataset", "mnist-sample", "--batch-size", "500", "--seed", "3", "--epochs", "2",
              "--arch", "dcgan", "--width", "8", "--latent-dim", "16", "--conditional", "--ema-kimg", "1"]


def test_two_node_dcgan_job_matches_one_local_process(slurm, tmp_path):
    """The same run as one process here: BatchNorm statistics all-reduced across the nodes
    (--sync-bn, dcgan's default above one process) keep the two in step."""
    f = slurm.sbatch(*TWO_NODES, TRAIN, *DCGAN_ARGS)
    subprocess.run([sys.executable, "-m", "gan_dist", "train", *DCGAN_ARGS, "--out", str(tmp_path),
                    "--name", "local"], check=True, capture_output=True, timeout=600)
    info = slurm.wait(f, ENDED, timeout=300)
    log = slurm.log(f)
    assert (info["JobState"], info["NodeList"]) == ("COMPLETED", "n[1-2]"), log
    run_dir = slurm.run_dir(f)
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["arch"], config["world_size"], config["env"]["num_nodes"]) == ("dcgan", 2, 2)
    assert (config["sync_bn"], config["sample_source"], config["num_classes"]) == (True, "ema", 10)
    assert [(m["epoch"], m["world_size"]) for m in read_metrics(run_dir)] == [(1, 2), (2, 2)]
    from safetensors.torch import load_file

    for name in ("generator.safetensors", "generator_raw.safetensors"):
        here, there = load_file(tmp_path / "local" / name), load_file(run_dir / name)
        diff = max((here[k].float() - there[k].float()).abs().max().item() for k in here)
        print(f"\n{name}: max |G(1 local process) - G(2 Slurm nodes)| = {diff:.3g}")
        assert diff < 1e-3, name  # summation order only (the MLP's 2-node figure: 1.5e-4)
