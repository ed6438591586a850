"""Shared helpers for tests that run the real `gan` command in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Small, fast settings on the shipped sample: 10 steps of 500 images per epoch.
FAST = ["--cpu", "--dataset", "mnist-sample", "--batch-size", "500"]


def gan(*args: str, env: dict | None = None, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "gan_dist", *map(str, args)], capture_output=True,
                          text=True, env=full_env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"gan {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def generator_tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def kill_9_once(args: list, pattern: str, folder: Path, timeout: float = 300) -> None:
    """Start `gan ARGS...`, wait until a file matching `pattern` exists under `folder`, then
    SIGKILL it, as a node failure or the OOM killer would."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "gan_dist", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while not any(Path(folder).glob(pattern)):
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
