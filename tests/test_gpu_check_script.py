"""scripts/gpu_check.sh on a machine without a GPU: one line, exit 3, within seconds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: gpu_check.sh would run")
def test_gpu_check_without_a_gpu_says_so_in_one_line(tmp_path):
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "GAN_PYTHON": sys.executable})
    assert proc.returncode == 3
    assert proc.stdout.strip() == "gpu_check: no CUDA GPU visible (torch.cuda.is_available() is false): nothing to check"
    assert (tmp_path / "out" / "summary.txt").read_text().strip() == proc.stdout.strip()
