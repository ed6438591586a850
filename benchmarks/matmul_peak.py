"""Measure this machine's matmul throughput (GFLOP/s) in fp32 and bf16.

Two figures per precision:

* ``large``: one big square matmul (default 2048^3), the practical peak of the BLAS/oneDNN
  kernels on this device and thread count;
* ``model``: every matmul one training step of the coursework MLP GAN does at batch 100
  (forward ``x @ W.T``, input gradient ``g @ W`` and weight gradient ``g.T @ x`` for each
  layer), timed together, i.e. the best the networks' own shapes can reach.

Used by ``run_benchmark.py`` to state what fraction of the peak training reaches; runnable
alone:

    python benchmarks/matmul_peak.py [--device cpu|cuda] [--threads N] [--size 2048]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

# The coursework networks: (in, out) per Linear layer.
G_LAYERS = [(100, 256), (256, 512), (512, 1024), (1024, 784)]
D_LAYERS = [(784, 1024), (1024, 512), (512, 256), (256, 1)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, min_seconds: float = 0.5, warmup: int = 3) -> float:
    """Seconds per call of ``fn`` (median of a few timed blocks after warm-up)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    # Pick a repeat count that takes ~min_seconds/3 per block.
    t0 = time.perf_counter()
    fn()
    _sync(device)
    once = max(time.perf_counter() - t0, 1e-7)
    reps = max(1, int(min_seconds / 3 / once))
    blocks = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        _sync(device)
        blocks.append((time.perf_counter() - t0) / reps)
    return sorted(blocks)[1]


def large_gflops(dtype: torch.dtype, device: torch.device, size: int = 2048) -> float:
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = _time(lambda: torch.mm(a, b), device)
    return 2 * size**3 / seconds / 1e9


def model_shapes(batch: int = 100) -> list[tuple[int, int, int]]:
    """(m, k, n) of each matmul in one D step + one G step: forward, grad-input, grad-weight.

    Counted for every layer as in ``flop_per_image`` in run_benchmark.py (a good
    approximation: it includes D's weight gradients once per D step and G's once per G step).
    """
    shapes = []
    for fan_in, fan_out in G_LAYERS + D_LAYERS:
        shapes.append((batch, fan_in, fan_out))  # forward:      (B, in) @ (in, out)
        shapes.append((batch, fan_out, fan_in))  # grad input:   (B, out) @ (out, in)
        shapes.append((fan_out, batch, fan_in))  # grad weight:  (out, B) @ (B, in)
    return shapes


def model_gflops(dtype: torch.dtype, device: torch.device, batch: int = 100) -> dict:
    """GFLOP/s of the model's own matmul shapes, each alone and all together."""
    per_shape = {}
    pairs = []
    for m, k, n in model_shapes(batch):
        a = torch.randn(m, k, device=device, dtype=dtype)
        b = torch.randn(k, n, device=device, dtype=dtype)
        pairs.append((a, b))
        key = f"{m}x{k}x{n}"
        if key not in per_shape:
            seconds = _time(lambda a=a, b=b: torch.mm(a, b), device, min_seconds=0.15)
            per_shape[key] = round(2 * m * k * n / seconds / 1e9, 1)

    def all_mm():
        for a, b in pairs:
            torch.mm(a, b)

    flop = sum(2 * m * k * n for m, k, n in model_shapes(batch))
    seconds = _time(all_mm, device)
    return {"all_shapes_gflops": round(flop / seconds / 1e9, 1), "per_shape_gflops": per_shape}


def measure(device: str = "cpu", size: int = 2048, batch: int = 100) -> dict:
    dev = torch.device(device)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    if dev.type == "cuda":
        dtypes["fp16"] = torch.float16
    out = {"device": device, "threads": torch.get_num_threads(), "size": size, "batch": batch}
    for name, dtype in dtypes.items():
        if dev.type == "cuda" and name == "fp32":
            # TF32 off: "fp32" means fp32 here; the training loops do not enable TF32 either.
            torch.backends.cuda.matmul.allow_tf32 = False
        out[name] = {
            "large_gflops": round(large_gflops(dtype, dev, size), 1),
            **model_gflops(dtype, dev, batch),
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--size", type=int, default=2048, help="side of the large square matmul")
    p.add_argument("--batch", type=int, default=100)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(measure(args.device, args.size, args.batch), indent=2))


if __name__ == "__main__":
    main()
