"""The fixed-noise sample grids: the same z (and classes or codes) all run long, across
resumes and process counts, so grids of different epochs show the same samples learning."""

from __future__ import annotations

import torch

from gan_dist.nets import NetSpec

SAMPLE_GRID = 64  # fixed-noise images per grid (8 x 8)
MAX_GRID_ROWS = 16  # conditional grids: one row per class, for the first 16 classes


def fixed_noise(seed: int, latent_dim: int, device, n: int = SAMPLE_GRID) -> torch.Tensor:
    return torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed + 7)).to(device)


def grid_layout(num_classes: int) -> dict:
    """The fixed-noise grid: 8 x 8, or one row of 8 per class or latent code value (at most
    MAX_GRID_ROWS rows)."""
    if not num_classes:
        return {"rows": 8, "cols": 8}
    return {"rows": min(num_classes, MAX_GRID_ROWS), "cols": 8}


def grid_inputs(seed: int, spec: NetSpec, device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(z, labels or None) of the fixed-noise grid; row r of a conditional grid is class r,
    of a latent-code grid code value r."""
    layout = grid_layout(spec.label_values)
    z = fixed_noise(seed, spec.latent_dim, device, layout["rows"] * layout["cols"])
    if not spec.label_values:
        return z, None
    return z, torch.arange(layout["rows"], device=device).repeat_interleave(layout["cols"])


@torch.no_grad()
def draw_grid(G: torch.nn.Module, inputs: tuple[torch.Tensor, torch.Tensor | None]) -> torch.Tensor:
    """The grid's images (N, C, H, W) in [-1, 1] on the CPU, drawn in eval mode (G's mode kept)."""
    z, labels = inputs
    was_training = G.training
    G.eval()
    images = (G(z) if labels is None else G(z, labels)).float().cpu()
    G.train(was_training)
    return images
