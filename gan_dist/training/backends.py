"""Numerics settings of the CUDA backends, chosen once per process, stated here.

- TF32 off for fp32 matmuls and convolutions (StyleGAN2-ADA does the same): `--precision no`
  means fp32, so a GPU run stays comparable with a CPU run (scripts/gpu_check.sh measures the
  difference). The fast path on a GPU is `--precision bf16`, which Accelerate's autocast runs
  on the tensor cores anyway.
- cudnn.benchmark off: an algorithm chosen by timing can differ between the first life of a
  run and its resumed one, and with it the last bits; with it off, a resume on the same GPU
  repeats the same algorithms. (The convolutions' shapes are fixed, so benchmark mode would
  pay for dcgan: a deliberate trade of some speed for reproducible resumes.)
- No CUDA graphs (`torch.compile` mode "reduce-overhead" is not used): the generator's output
  of one call is still read after its next call within a step, which CUDA-graph output buffers
  would overwrite.
"""

from __future__ import annotations

import torch


def configure_backends() -> None:
    """Apply the choices above (harmless on the CPU, where the flags are unused)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
