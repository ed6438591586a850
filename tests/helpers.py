"""Shared helpers for tests that run the real `gan` command in subprocesses."""

from __future__ import annotations

import json
import os
import socket
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


# --- reading PDFs back (poppler-utils) ---------------------------------------------------
def pdf_text(pdf: Path) -> str:
    out = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return " ".join(out.split())


def pdf_rows(pdf: Path) -> list[str]:
    """The PDF's lines as laid out (a table row stays one line), white space collapsed."""
    out = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                         check=True).stdout
    return [" ".join(line.split()) for line in out.splitlines() if line.strip()]


def pdf_images(pdf: Path) -> list[tuple[int, int]]:
    """(width, height) of every image (not soft mask) in the PDF."""
    lines = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True,
                           check=True).stdout.splitlines()[2:]
    return [(int(f[3]), int(f[4])) for f in (line.split() for line in lines) if f[2] == "image"]


def pdf_pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(next(line.split()[1] for line in info.splitlines() if line.startswith("Pages:")))


def assert_no_latex(text: str) -> None:
    for raw in ("$", "\\", "^{", "_{", "frac{", "mathrm", "mathbb"):
        assert raw not in text, f"raw LaTeX {raw!r} in the PDF text"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for --master-port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
