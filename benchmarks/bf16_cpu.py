"""fp32 against bf16 autocast on this CPU, for the coursework MLP's training step, measured so
that a shared machine does not decide the answer.

One D step and one G step at batch 100 (the coursework networks from gan_dist.nets, BCE
losses, Adam), under `torch.autocast("cpu", torch.bfloat16)` for bf16 as Accelerate does.
The two precisions alternate in short blocks, many rounds; each block is timed in wall-clock
seconds and in this process's CPU seconds. Other processes on the machine steal wall-clock
time from whichever block runs, but not CPU time: images per CPU-second compare the
precisions fairly when the machine is busy, wall-clock images/s when it is quiet (best block
of each precision).

    python benchmarks/bf16_cpu.py [--threads 1] [--rounds 5] [--seconds 2]

Prints one JSON object. training/precision.py's refusal cites the figures of `gan train`
itself (docs/accidents.md); this script checks their ratio on any CPU in a minute.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # gan_dist, installed or not

BATCH = 100


def make_step():
    from gan_dist.nets import NetSpec, build_mlp
    from gan_dist.training.losses import discriminator_loss, generator_loss

    torch.manual_seed(0)
    G, D = build_mlp(NetSpec(arch="mlp", latent_dim=100, image_shape=(1, 28, 28), d_dropout=0.3))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(BATCH, 1, 28, 28) * 2 - 1

    def step(precision: str) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            z = torch.randn(BATCH, 100)
            fake = G(z)
            d_loss = discriminator_loss(D(real), D(fake.detach()))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            g_loss = generator_loss(D(G(torch.randn(BATCH, 100))))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
    return step


def block(step, precision: str, seconds: float) -> dict:
    """Steps for about `seconds` of wall-clock time: images per wall and per CPU second."""
    steps, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall0 < seconds or steps < 2:
        step(precision)
        steps += 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"images_per_second": steps * BATCH / wall, "images_per_cpu_second": steps * BATCH / cpu}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time is one core's)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=2.0, help="wall-clock seconds per block")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as gan train does
    step = make_step()
    for precision in ("no", "bf16"):  # warm-up: first calls pay for allocation and dispatch
        block(step, precision, 0.5)
    blocks: dict[str, list[dict]] = {"no": [], "bf16": []}
    for _ in range(args.rounds):
        for precision in ("no", "bf16"):
            blocks[precision].append(block(step, precision, args.seconds))
    best = {p: {k: round(max(b[k] for b in bs), 1) for k in bs[0]} for p, bs in blocks.items()}
    from gan_dist.training.precision import cpu_capabilities, describe_cpu

    print(json.dumps({
        "cpu": describe_cpu(cpu_capabilities()), "threads": args.threads, "batch": BATCH, "rounds": args.rounds,
        "best": best,
        "fp32_over_bf16": {k: round(best["no"][k] / best["bf16"][k], 1) for k in best["no"]},
        "blocks": {p: [{k: round(v, 1) for k, v in b.items()} for b in bs] for p, bs in blocks.items()},
        "load_average": [round(x, 2) for x in __import__("os").getloadavg()],
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
