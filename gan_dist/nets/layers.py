"""Layers shared by the networks: an opt-in fast CPU dropout, BatchNorm per group and across
processes, and PacGAN's packing of D's inputs."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LANE_LEVELS = 1 << 15  # a 15-bit uniform integer per element: p is kept to within 1/32768


def cpu_keep_mask(shape, p: float) -> tuple[torch.Tensor, float]:
    """Bernoulli(1 - p') keep-mask and its rescale 1 / (1 - p'), with p' = p rounded to
    1/32768. Four elements per 64-bit draw: the CPU generator (mt19937) makes 32 bits per
    call, and `rand() >= p` spends one call per element; this spends half a call. Measured
    here: about 1.9x faster, and mask drawing was the third-largest cost of a step."""
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_()  # 63 random bits each
    lanes = words.view(torch.int16)[:n] & (LANE_LEVELS - 1)  # four 15-bit lanes per word
    keep_levels = max(1, round((1.0 - p) * LANE_LEVELS))
    return (lanes >= LANE_LEVELS - keep_levels).view(shape), LANE_LEVELS / keep_levels


class LaneDropout(nn.Dropout):
    """The opt-in fast dropout (`--fast-dropout`): nn.Dropout's distribution with p rounded to
    1/32768 on the CPU (p = 0.3 becomes 0.300003), drawn from 15-bit integer lanes instead of
    bernoulli_; on other devices (counter-based generators, already fast) as `uniform >= p`.
    Measured here: a whole coursework training step about 9% faster than with nn.Dropout."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type == "cpu":
            keep, scale = cpu_keep_mask(x.shape, self.p)
        else:
            keep, scale = torch.rand(x.shape, device=x.device) >= self.p, 1.0 / (1.0 - self.p)
        return x * keep * scale


class GroupSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d with two extras, for the DCGAN discriminator and generator:

    * `groups`: the batch is `groups` equal blocks (D's one forward on torch.cat([real, fake])),
      each normalised with its own statistics, exactly as if each block went through D in a
      forward of its own (DCGAN's separate real and fake batches) -- but in ONE forward, so
      DDP's reducer sees one forward per backward (two forwards of a DDP module before one
      backward fail with "Expected to mark a variable ready only once"). Running statistics
      are updated from ungrouped batches only (G's; D's are never used: D only trains).
    * `sync`: the statistics span every process. Per channel and group, the local sum, sum of
      squares and count are all-reduced in ONE autograd-aware collective (torch.distributed.nn:
      its backward all-reduces the gradients), so forward and backward equal one process's
      over the global batch, up to summation order. torch.nn.SyncBatchNorm cannot do this on
      the CPU (it refuses CPU tensors) nor per group.

    Same parameters and buffers as BatchNorm2d: checkpoints and generator files move freely.
    With sync on, every process must call it equally often, as data-parallel training does."""

    sync = False

    def forward(self, x: torch.Tensor, groups: int = 1) -> torch.Tensor:
        import torch.distributed as dist

        sync = (self.sync and self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1)
        if not self.training or (groups == 1 and not sync):
            return super().forward(x)
        if not sync:  # torch's fused kernel per block: faster than the sums below on the CPU
            return torch.cat([F.batch_norm(block, None, None, self.weight, self.bias, True, 0.0, self.eps)
                              for block in x.chunk(groups)])
        from torch.distributed.nn.functional import all_reduce

        return self.normalise_by_sums(x, groups, all_reduce)

    def normalise_by_sums(self, x: torch.Tensor, groups: int, reduce=None) -> torch.Tensor:
        """BatchNorm from per-group sums, squares and counts, passed through `reduce` (the
        all-reduce across processes) first; in float32 whatever the input's dtype."""
        c = x.shape[1]
        xf = x.float().view(groups, x.shape[0] // groups, c, *x.shape[2:])  # (G, B/G, C, H, W)
        dims = (1, 3, 4)
        n = torch.full((groups, 1), float(xf[0].numel() // c), device=x.device)
        local = torch.cat([xf.sum(dims), (xf * xf).sum(dims), n], dim=1)  # (G, 2C + 1)
        if reduce is not None:
            local = reduce(local)
        n = local[:, -1:]
        mean = local[:, :c] / n  # (G, C)
        var = (local[:, c:2 * c] / n - mean * mean).clamp_min(0)  # biased, as BatchNorm normalises
        if groups == 1 and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                self.running_mean.lerp_(mean[0].detach(), self.momentum)
                self.running_var.lerp_(var[0].detach() * n[0] / (n[0] - 1).clamp_min(1), self.momentum)
        scale = self.weight * torch.rsqrt(var + self.eps)  # (G, C)
        shift = self.bias - mean * scale
        out = xf * scale[:, None, :, None, None] + shift[:, None, :, None, None]
        return out.view_as(x).to(x.dtype)


def set_sync_batchnorm(module: nn.Module, on: bool = True) -> nn.Module:
    """Make every GroupSyncBatchNorm of `module` synchronise across processes (--sync-bn)."""
    for m in module.modules():
        if isinstance(m, GroupSyncBatchNorm):
            m.sync = on
    return module


def pack(x: torch.Tensor, n: int) -> torch.Tensor:
    """PacGAN's packing (Lin et al. 2018): (B, C, H, W) -> (B/n, n*C, H, W), images
    j*n .. j*n + n-1 side by side on channels (pack j's channels i*C .. (i+1)*C - 1 are image
    j*n + i). A view of contiguous NCHW images. n = 1 returns x."""
    if n == 1:
        return x
    batch, channels, height, width = x.shape
    if batch % n:
        raise ValueError(f"cannot pack {batch} images in groups of {n}")
    return x.reshape(batch // n, n * channels, height, width)


# ---- what the conv generators share: z and their second input ---------------------------------
LABEL_EMBED_DIM = 32  # G's label (or latent code) embedding, concatenated to z


def describe_inputs(generator: nn.Module, *, latent_dim: int, image_shape, num_classes: int,
                    latent_codes: int) -> int:
    """Set what every generator declares (nets/__init__.py: latent_dim, image_shape,
    num_classes, latent_codes); returns how many values its second input takes (0: none)."""
    if num_classes and latent_codes:
        raise ValueError("a generator takes class labels or latent codes, not both")
    generator.latent_dim, generator.image_shape = latent_dim, tuple(image_shape)
    generator.num_classes, generator.latent_codes = num_classes, latent_codes
    return num_classes or latent_codes


def label_embedding(values: int) -> nn.Embedding | None:
    """G's embedding of a class or code value (None when it takes z alone); its width is
    LABEL_EMBED_DIM. The caller initialises it N(0, 1) like z, so the label carries as much
    signal as the noise at the start."""
    return nn.Embedding(values, LABEL_EMBED_DIM) if values else None


def with_label(z: torch.Tensor, embed: nn.Embedding | None, labels: torch.Tensor | None) -> torch.Tensor:
    """(B, latent) -> (B, latent + 32) with the label's embedding beside z (unchanged without one)."""
    if embed is None:
        return z
    if labels is None:
        raise ValueError("this generator needs labels (or latent codes)")
    return torch.cat([z, embed(labels).to(z.dtype)], dim=1)
