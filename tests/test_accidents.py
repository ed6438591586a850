"""Issue 27: nothing lost when the machine says no. One writer per run directory (a kernel
lock), a full disk (a real tmpfs filled mid-run), precision that fits the CPU, a corrupt newest
checkpoint, and a crowded machine. Real processes and real file systems; the CPU's and the
machine's answers (bf16 support, load average) are replaced only in the unit tests."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import FAST, gan, generator_tensors, kill_9_once, max_abs_diff, metrics

from gan_dist.errors import GanError

BASE = [*FAST, "--epochs", "3", "--seed", "7"]  # 10 steps of 500 per epoch


def events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    return lines[0]


def same_run(a: Path, b: Path) -> None:
    """Same per-epoch rows (timings aside) and the same final generator, exactly."""
    keys = ("epoch", "g_loss", "d_loss", "d_real", "d_fake", "steps")
    assert [[r[k] for k in keys] for r in metrics(a)] == [[r[k] for k in keys] for r in metrics(b)]
    assert max_abs_diff(generator_tensors(a / "generator.safetensors"),
                        generator_tensors(b / "generator.safetensors")) == 0.0


# ---- precision -----------------------------------------------------------------------------
@pytest.fixture
def cpu_with(monkeypatch):
    """Pretend this CPU has exactly the given cpuinfo features."""
    from gan_dist.training import precision

    def pretend(*features: str, name: str = "Test CPU", capability: str = "AVX2"):
        caps = {"cpu_name": name, "capability": capability, **{f: True for f in features}}
        monkeypatch.setattr(precision, "cpu_capabilities", lambda: caps)
    return pretend


def test_auto_picks_bf16_only_where_the_cpu_has_it(cpu_with):
    from gan_dist.training.precision import choose_precision

    cpu_with()  # AVX2 only, like this project's machine
    choice = choose_precision("auto", "cpu")
    assert choice.chosen == "no" and "no native bf16" in choice.reason and "Test CPU (AVX2)" in choice.reason
    for feature in ("avx512_bf16", "amx_bf16", "bf16"):  # Cooper Lake / Zen 4, Sapphire Rapids, Arm
        cpu_with(feature, capability="AVX512")
        choice = choose_precision("auto", "cpu")
        assert choice.chosen == "bf16" and feature in choice.reason, feature
        assert choose_precision("bf16", "cpu").chosen == "bf16"
    assert choose_precision("no", "cpu").record() == {"asked": "no", "chosen": "no", "reason": "asked for: fp32"}


def test_bf16_on_a_cpu_without_it_is_refused_with_the_measured_alternative(cpu_with):
    from gan_dist.training import precision

    cpu_with(name="AMD EPYC")
    with pytest.raises(GanError) as refused:
        precision.choose_precision("bf16", "cpu")
    text = str(refused.value)
    assert "AMD EPYC (AVX2) has no native bf16" in text and "--allow-slow-bf16" in text
    assert f"{precision.MEASURED_CPU['fp32']:,} in fp32" in text and precision.MEASURED_CPU_SLOWDOWN > 1
    slow = precision.choose_precision("bf16", "cpu", allow_slow_bf16=True)  # the escape hatch
    assert slow.chosen == "bf16" and "--allow-slow-bf16" in slow.reason
    with pytest.raises(GanError, match="fp16 needs a GPU"):
        precision.choose_precision("fp16", "cpu")


def test_gpu_precision_follows_the_device(monkeypatch):
    from gan_dist.training import precision

    monkeypatch.setattr(precision, "cuda_bf16_native", lambda: True)
    assert precision.choose_precision("auto", "cuda").chosen == "bf16"
    assert precision.choose_precision("fp16", "cuda").chosen == "fp16"
    monkeypatch.setattr(precision, "cuda_bf16_native", lambda: False)  # e.g. a V100
    assert precision.choose_precision("auto", "cuda").chosen == "no"
    with pytest.raises(GanError, match="this GPU has no native bf16"):
        precision.choose_precision("bf16", "cuda")


def test_the_real_capability_queries_answer():
    from gan_dist.training.precision import CPU_BF16_FEATURES, cpu_capabilities

    caps = cpu_capabilities()
    assert isinstance(caps["capability"], str) and all(isinstance(caps.get(f, False), bool) for f in CPU_BF16_FEATURES)


def _native_bf16() -> bool:
    from gan_dist.training.precision import CPU_BF16_FEATURES, cpu_capabilities

    return any(cpu_capabilities().get(f) for f in CPU_BF16_FEATURES)


@pytest.mark.skipif(_native_bf16(), reason="this CPU has native bf16: nothing to refuse")
def test_bf16_is_refused_here_before_anything_is_written(tmp_path):
    line = one_line_error(gan("train", *FAST, "--precision", "bf16", "--out", tmp_path / "runs", "--name", "b",
                              check=False))
    assert "has no native bf16" in line and "--precision no" in line and "--allow-slow-bf16" in line
    assert not (tmp_path / "runs").exists()  # not even the run directory (or --out) is left


# ---- the lock ------------------------------------------------------------------------------
def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    import socket

    from gan_dist.runlock import LOCK_FILE, RunInUse, RunLock

    run = tmp_path / "out" / "r"
    with RunLock(run):
        holder = json.loads((run / LOCK_FILE).read_text())
        assert (holder["pid"], holder["host"]) == (os.getpid(), socket.gethostname())
        with pytest.raises(RunInUse) as refused:
            with RunLock(run):
                pass
        assert f"pid {os.getpid()} on host {socket.gethostname()}, since 20" in str(refused.value)
        assert (run / LOCK_FILE).is_file()  # the refused one removed nothing
    # released: the lock file is gone, and so are the folders the lock had to create
    assert not (tmp_path / "out").exists()


def test_kill_9_leaves_no_stale_lock(tmp_path):
    from gan_dist.runlock import RunInUse, RunLock

    run = tmp_path / "r"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from gan_dist.runlock import RunLock\n"
        f"lock = RunLock({str(run)!r}).__enter__(); print('locked', flush=True); time.sleep(600)")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RunInUse, match=f"pid {holder.pid} "):
        RunLock(run).__enter__()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (run / ".lock").is_file()  # its record is still there, but no lock
    with RunLock(run) as lock:
        assert lock.locked


def test_a_file_system_without_locks_warns_and_goes_on(tmp_path, monkeypatch, capsys):
    from gan_dist import runlock

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
    monkeypatch.setattr(runlock.fcntl, "flock", no_locks)
    with runlock.RunLock(tmp_path / "r") as lock:
        assert not lock.locked
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "No locks available" in err and "docs/accidents.md" in err


@pytest.mark.slow
def test_two_fresh_starts_and_two_resumes_of_one_run_one_runs_the_other_is_refused(tmp_path):
    args = [*FAST, "--epochs", "2", "--out", str(tmp_path), "--name", "same"]
    run = tmp_path / "same"

    def race(*extra: str) -> tuple[subprocess.Popen, subprocess.Popen, list[str]]:
        procs = [subprocess.Popen([sys.executable, "-m", "gan_dist", "train", *args, *extra], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        errs = [p.communicate(timeout=900)[1] for p in procs]
        codes = sorted(p.returncode for p in procs)
        assert codes == [0, 2], errs
        winner, loser = (0, 1) if procs[0].returncode == 0 else (1, 0)
        lines = error_lines(errs[loser])
        assert len(lines) == 1 and "Traceback" not in errs[loser], errs[loser]
        assert "is being written by another gan train" in lines[0], lines[0]
        assert f"pid {procs[winner].pid} on host" in lines[0], lines[0]  # the holder, by name
        return procs[winner], procs[loser], lines

    race()
    assert [r["epoch"] for r in metrics(run)] == [1, 2]
    assert [e["event"] for e in events(run)] == ["start", "finish"]
    race("--resume", "auto", "--epochs", "3")  # a double-submitted job
    assert [r["epoch"] for r in metrics(run)] == [1, 2, 3]
    assert [e["event"] for e in events(run)] == ["start", "finish", "resume", "finish"]
    assert not (run / ".lock").exists()


@pytest.mark.slow
def test_kill_9_of_a_two_process_launcher_takes_its_workers_along_and_resume_starts_at_once(tmp_path):
    args = ["train", *FAST, "--d-dropout", "0", "--processes", "2", "--out", tmp_path, "--name", "k"]
    run = tmp_path / "k"
    kill_9_once([*args, "--epochs", "20"], "epoch_0001/trainer_state.json", run / "checkpoints")
    worker = json.loads((run / "status.json").read_text())["pid"]  # the main worker writes the status
    deadline = time.time() + 5  # an orphaned worker would train on (and write) for a minute
    while _alive(worker):  # the workers die with their launcher, and with them any writer
        assert time.time() < deadline, f"worker {worker} outlived its launcher"
        time.sleep(0.1)
    gan(*args, "--epochs", "3", "--resume", "auto")
    assert [r["epoch"] for r in metrics(run)] == [1, 2, 3]
    assert [e["event"] for e in events(run)][-2:] == ["resume", "finish"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False  # a zombie has finished
    return True


# ---- a full disk ---------------------------------------------------------------------------
def test_full_disk_errors_are_recognised():
    from gan_dist.diskspace import DiskFull, disk_full_errno

    assert disk_full_errno(OSError(errno.ENOSPC, "No space left on device")) == errno.ENOSPC
    assert disk_full_errno(OSError(errno.EDQUOT, "Disk quota exceeded")) == errno.EDQUOT
    quoted = RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")
    assert disk_full_errno(quoted) == errno.ENOSPC  # safetensors' words
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as err:
            raise RuntimeError("file write failed") from err
    except RuntimeError as err:
        assert disk_full_errno(err) == errno.ENOSPC  # what caused it counts
    assert disk_full_errno(ValueError("bad value")) is None
    assert issubclass(DiskFull, GanError) and issubclass(DiskFull, OSError)


@contextlib.contextmanager
def small_disk(tmp_path: Path, megabytes: int):
    """A tmpfs of this size (root only: CI runs as root), unmounted whatever happens."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; CI runs these tests as root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def grow(mount: Path, megabytes: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={megabytes}m", str(mount)], check=True)


def test_atomic_writes_on_a_full_disk_fail_with_one_line_and_leave_the_old_file(tmp_path):
    from gan_dist.atomic import write_atomic
    from gan_dist.diskspace import DiskFull, disk_full_errno

    with small_disk(tmp_path, 1) as disk:
        write_atomic(disk / "a.json", b"old")
        with pytest.raises(DiskFull) as full:
            write_atomic(disk / "a.json", b"x" * 2_000_000)
        assert str(full.value).startswith(f"writing {disk / 'a.json'} failed: no space left on device")
        assert (disk / "a.json").read_bytes() == b"old" and sorted(p.name for p in disk.iterdir()) == ["a.json"]
        import torch  # torch.save says nothing about space: the probe at the write site tells

        filler = disk / "filler"
        filler.write_bytes(b"\0" * (disk_free(disk) - 4096))
        with pytest.raises(RuntimeError) as raw:
            torch.save(torch.zeros(100_000), disk / "t.pt")
        assert disk_full_errno(raw.value) is None and disk_full_errno(raw.value, disk) == errno.ENOSPC


def disk_free(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    gan("train", *BASE, "--sample-epochs", "3", "--out", out, "--name", "whole")
    return out / "whole"


@pytest.mark.slow
def test_a_full_disk_mid_run_ends_with_one_line_and_resume_finishes_the_same_run(tmp_path, whole):
    # A checkpoint of the coursework MLP takes 35.4 MB (G, D, their Adam states). 90 MiB hold
    # two of them and the run's files; the third cannot be written beside them.
    with small_disk(tmp_path, 90) as disk:
        args = ["train", *BASE, "--sample-epochs", "3", "--out", disk, "--name", "full"]
        proc = gan(*args, check=False)
        run = disk / "full"
        line = one_line_error(proc)
        newest = run / "checkpoints" / "epoch_0002"
        assert f"writing checkpoint {run / 'checkpoints' / 'epoch_0003'} failed: no space left on device" in line
        assert "the next checkpoint needs about 35." in line and f"{newest}, which is intact" in line
        assert line.endswith(f"continue with: gan train --resume auto --out {disk} --name full")
        assert proc.stderr.count("warning: only") == 1  # warned once, after the first checkpoint
        from gan_dist.training.checkpoint import checkpoint_problem

        assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_0001", "epoch_0002"]
        assert checkpoint_problem(newest) is None  # the previous checkpoint is whole
        assert not list(run.rglob(".tmp-*")) and not list(run.rglob("*.tmp"))
        assert json.loads((run / "status.json").read_text())["state"] == "failed"

        grow(disk, 200)  # space freed
        gan(*args, "--resume", "auto")
        same_run(whole, run)
        assert [e["event"] for e in events(run)] == ["start", "failed", "resume", "finish"]


@pytest.mark.slow
@pytest.mark.multiproc
def test_a_full_disk_ends_every_process_of_a_two_process_run_at_once(tmp_path):
    with small_disk(tmp_path, 90) as disk:
        tic = time.time()
        proc = gan("train", *BASE, "--sample-epochs", "3", "--d-dropout", "0", "--processes", "2", "--out", disk,
                   "--name", "two", check=False, timeout=600)
        line = one_line_error(proc)
        assert "writing checkpoint" in line and "no space left on device" in line and "epoch_0002" in line
        print(f"2 processes, full disk: ended in {time.time() - tic:.0f} s")
        run = disk / "two"
        assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_0001", "epoch_0002"]
        assert not list(run.rglob(".tmp-*"))


def test_gan_report_onto_a_full_disk_is_one_line_and_leaves_no_partial_pdf(tmp_path):
    from report_fixtures import write_run
    from typer.testing import CliRunner

    from gan_dist.cli import app

    run = write_run(tmp_path, epochs=10, sample_epochs=(10,))
    with small_disk(tmp_path, 1) as disk:
        (disk / "filler").write_bytes(b"\0" * (disk_free(disk) - 8192))
        result = CliRunner().invoke(app, ["report", str(run), "-o", str(disk / "report.pdf")])
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert lines[-1].startswith(f"error: writing {disk / 'report.pdf'} failed: no space left on device")
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_leftovers_of_a_killed_run_are_removed_at_the_next_start(tmp_path):
    from gan_dist.rundir import RunDir
    from gan_dist.training.checkpoint import remove_leftovers

    run = RunDir(tmp_path / "r", is_main=True)
    run.create()
    (run.path / ".quality.jsonl.q.tmp").write_text("{")  # gan eval's, perhaps being written now
    for path in (run.path / ".config.json.abc.tmp", run.samples / ".epoch_0001.png.x.tmp",
                 run.generators / ".epoch_0001.safetensors.y.tmp", run.checkpoints / ".tmp-epoch_0002" / "model.safetensors"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    (run.path / "metrics.jsonl").write_text("")
    remove_leftovers(run)
    left = sorted(str(p.relative_to(run.path)) for p in run.path.rglob("*"))
    assert left == [".quality.jsonl.q.tmp", "checkpoints", "generators", "metrics.jsonl", "samples"]


def test_low_space_warning_names_what_two_checkpoints_need(tmp_path):
    from gan_dist.training.space import low_space_warning

    free = disk_free(tmp_path)
    assert low_space_warning(tmp_path, free // 4) is None
    text = low_space_warning(tmp_path, free)
    assert text.startswith("only ") and "the next 2 need" in text


def test_an_append_cut_short_leaves_no_half_line(tmp_path):
    from gan_dist.diskspace import DiskFull
    from gan_dist.rundir import RunDir

    with small_disk(tmp_path, 1) as disk:
        run = RunDir(disk / "r", is_main=True)
        run.create()
        run.append_metrics({"epoch": 1})
        (disk / "filler").write_bytes(b"\0" * (disk_free(disk) - 100))
        with pytest.raises(DiskFull, match="appending to"):
            run.append_metrics({"epoch": 2, "pad": "x" * 50_000})
        assert (run.path / "metrics.jsonl").read_text() == '{"epoch": 1}\n'


# ---- a corrupt checkpoint ------------------------------------------------------------------
@pytest.mark.slow
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    args = ["train", *BASE, "--ema-kimg", "1", "--keep-checkpoints", "3", "--precision", "auto", "--threads", "1",
            "--out", tmp_path, "--name", "c"]
    gan(*args)
    run = tmp_path / "c"
    config = json.loads((run / "config.json").read_text())
    assert config["env"]["threads_per_process"] == 1
    if not _native_bf16():  # --precision auto on this machine
        assert config["precision"] == "no" and "no native bf16, so fp32" in config["precision_choice"]["reason"]
    before = metrics(run)
    from gan_dist.training.checkpoint import checkpoint_problem

    checkpoints = run / "checkpoints"
    newest, previous = checkpoints / "epoch_0003", checkpoints / "epoch_0002"
    # damage in every way one can, on copies of a real checkpoint
    for damage, expected in [(lambda c: (c / "optimizer.bin").unlink(), "optimizer.bin is missing"),
                             (lambda c: _truncate(c / "optimizer_1.bin"), "optimizer_1.bin has"),
                             (lambda c: (c / "trainer_state.json").write_text("{"), "trainer_state.json is unreadable")]:
        copy = tmp_path / "copies" / "epoch_0003"
        shutil.rmtree(copy.parent, ignore_errors=True)
        shutil.copytree(newest, copy)
        damage(copy)
        assert expected in checkpoint_problem(copy)
    # the newest: its generator weights cut short, its EMA gone
    _truncate(newest / "model.safetensors")
    (newest / "ema.safetensors").unlink()
    assert checkpoint_problem(newest).startswith("ema.safetensors is missing")
    explicit = gan(*args, "--resume", newest, check=False)  # named by path: no fallback
    assert f"checkpoint {newest} cannot be read" in one_line_error(explicit) and str(previous) in explicit.stderr
    proc = gan(*args, "--epochs", "4", "--resume", "auto")
    warnings = [line for line in proc.stderr.splitlines() if "cannot be read" in line]
    assert len(warnings) == 1 and str(newest) in warnings[0] and f"resuming from {previous}" in warnings[0], proc.stderr
    assert [e["event"] for e in events(run)][-2:] == ["resume", "finish"] and events(run)[-2]["epoch"] == 2
    after = metrics(run)
    assert [r["epoch"] for r in after] == [1, 2, 3, 4]
    keys = ("g_loss", "d_loss", "d_real", "d_fake")
    assert [after[2][k] for k in keys] == [before[2][k] for k in keys]  # epoch 3 again, exactly
    # nothing readable at all: one line, nothing resumed
    for checkpoint in checkpoints.iterdir():
        _truncate(checkpoint / "model_1.safetensors")
    line = one_line_error(gan(*args, "--epochs", "5", "--resume", "auto", check=False))
    assert "none of the 3 checkpoints" in line and "can be read" in line
    assert [r["epoch"] for r in metrics(run)] == [1, 2, 3, 4]


def _truncate(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)


# ---- a crowded machine ---------------------------------------------------------------------
def test_a_crowded_machine_gets_one_warning_naming_threads(monkeypatch, capsys):
    from gan_dist.environment import RunEnvironment
    from gan_dist.training import crowding

    assert crowding.crowding_warning(1.5, 2, 2) is None
    text = crowding.crowding_warning(3.2, 2, 2)
    assert "load average 3.2 on 2 cores" in text and "--threads 1" in text
    # a run allowed 4 cores of a 64-core machine: the machine's load says little of those 4
    assert crowding.crowding_warning(10.0, 4, 64) is None and crowding.crowding_warning(70.0, 4, 64)
    monkeypatch.setattr(crowding, "load_average", lambda: 99.0)
    crowding.warn_if_crowded(RunEnvironment.read({}))
    crowding.warn_if_crowded(RunEnvironment.read({"LOCAL_RANK": "1", "WORLD_SIZE": "2"}))  # not its machine's first
    assert capsys.readouterr().err.count("warning: this machine is already busy") == 1


def test_threads_sets_the_threads_of_each_process():
    import torch

    from gan_dist.environment import RunEnvironment
    from gan_dist.training.launch import configure_threads

    saved = torch.get_num_threads()
    try:
        configure_threads(RunEnvironment.read({"OMP_NUM_THREADS": "2"}), 1)  # --threads wins
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(saved)
