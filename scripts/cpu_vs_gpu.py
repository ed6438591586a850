"""The largest difference between a few fp32 training steps on the CPU and on the GPU.

Same initial weights, same real batches, same noise (drawn on the CPU, copied), dropout off;
runs STEPS steps of Algorithm 1 (d_step, g_step) on each device and prints JSON with the
largest absolute difference of every loss and of the final generator weights. TF32 is off
on the GPU (training/backends.py), so this is fp32 vs fp32: differences come from summation
order and the libraries' kernels only.

    python scripts/cpu_vs_gpu.py [--steps 20] [--arch mlp]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gan_dist.datasets import load_sample, to_unit_range  # noqa: E402
from gan_dist.nets import ARCHS, NetSpec, build_models  # noqa: E402
from gan_dist.training.backends import configure_backends  # noqa: E402
from gan_dist.training.steps import d_step, g_step  # noqa: E402


class _NoAccelerator:
    """What d_step/g_step use of an Accelerator, for one plain process."""

    def autocast(self):
        import contextlib

        return contextlib.nullcontext()

    def backward(self, loss, **kwargs):
        loss.backward(**kwargs)


def train_steps(arch: str, device: str, steps: int, batch: int = 64) -> tuple[list[list[float]], dict]:
    torch.manual_seed(0)
    data = load_sample()
    G, D = build_models(NetSpec(arch, latent_dim=100, image_shape=data.shape, d_dropout=0.0))
    G, D = G.to(device), D.to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(1)
    images = torch.from_numpy(data.images)
    acc, losses = _NoAccelerator(), []
    for _ in range(steps):
        rows = torch.randint(len(images), (batch,), generator=gen)
        real = to_unit_range(images[rows]).to(device)
        z_d, z_g = (torch.randn(batch, 100, generator=gen).to(device) for _ in range(2))
        with torch.no_grad():
            fake = G(z_d)
        d_loss, d_real, d_fake = d_step(D, opt_d, real, fake, acc)
        g_loss = g_step(G(z_g), D, opt_g, "nonsaturating", acc)
        losses.append([float(v) for v in (d_loss, d_real, d_fake, g_loss)])
    return losses, {k: v.detach().cpu() for k, v in G.state_dict().items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--arch", default="mlp", choices=list(ARCHS))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("cpu_vs_gpu: no CUDA GPU visible", file=sys.stderr)
        return 3
    configure_backends()
    cpu_losses, cpu_g = train_steps(args.arch, "cpu", args.steps)
    gpu_losses, gpu_g = train_steps(args.arch, "cuda", args.steps)
    loss_diff = [max(abs(a - b) for a, b in zip(x, y)) for x, y in zip(cpu_losses, gpu_losses)]
    weight_diff = max((cpu_g[k] - gpu_g[k]).abs().max().item() for k in cpu_g)
    print(json.dumps({"arch": args.arch, "steps": args.steps, "gpu": torch.cuda.get_device_name(),
                      "max_abs_loss_diff_per_step": loss_diff, "max_abs_loss_diff": max(loss_diff),
                      "max_abs_generator_weight_diff": weight_diff,
                      "tf32": torch.backends.cuda.matmul.allow_tf32}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
