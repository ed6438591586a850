"""Randomness as a function of (seed, epoch, step), and which rows of a global batch are this
process's.

Every random choice is a function of (seed, epoch, step) and the GLOBAL batch, never of the
RNG's history: data order of (seed, epoch), noise of (seed, epoch, step), dropout masks of
(seed, epoch, step, rank). So a run gives the same numbers on 1 or N processes (up to
summation order, with dropout off), and a run resumed at any step repeats the uninterrupted
one exactly without replaying anything. Epochs are 1-based, steps 0-based, as Position.epoch
and Position.step name the step about to run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch


def stream_seed(seed: int, *parts) -> int:
    """A 63-bit seed for one named stream, e.g. (seed, "noise", epoch, step)."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class StepRandomness:
    """Data order, noise, fake labels and dropout seeds, each derivable at any (epoch, step)."""

    def __init__(self, seed: int, device: torch.device):
        self.seed = seed
        self.device = device
        self.generator = torch.Generator(device=device)

    def order(self, epoch: int, dataset_size: int, steps: int, global_batch: int) -> torch.Tensor:
        """(steps, global_batch) dataset indices of the epoch's global batches."""
        self.generator.manual_seed(stream_seed(self.seed, "order", epoch))
        perm = torch.randperm(dataset_size, generator=self.generator, device=self.device)
        return perm[: steps * global_batch].view(steps, global_batch)

    def noise(self, epoch: int, step: int, global_batch: int, latent_dim: int) -> torch.Tensor:
        """(2, global_batch, latent_dim): z for the D step and z for the G step."""
        self.generator.manual_seed(stream_seed(self.seed, "noise", epoch, step))
        return torch.randn(2, global_batch, latent_dim, generator=self.generator, device=self.device)

    def fake_labels(self, epoch: int, step: int, global_batch: int, classes: int) -> torch.Tensor:
        """(2, global_batch) classes of the fakes: for the D step and for the G step. Uniform, from
        a stream of (seed, epoch, step) of its own: unconditional runs draw exactly as before."""
        self.generator.manual_seed(stream_seed(self.seed, "labels", epoch, step))
        return torch.randint(classes, (2, global_batch), generator=self.generator, device=self.device)

    def augment(self, epoch: int, step: int) -> torch.Generator:
        """DiffAugment's stream of the step (training/steps.py Augmenter draws from it in a fixed
        order, for the global batch): the generator itself, seeded; use it before the next draw."""
        self.generator.manual_seed(stream_seed(self.seed, "augment", epoch, step))
        return self.generator

    def seed_dropout(self, epoch: int, step: int, rank: int) -> None:
        """Dropout draws from the global RNG: seed it per (epoch, step, rank)."""
        torch.manual_seed(stream_seed(self.seed, "dropout", epoch, step, rank))


@dataclass(frozen=True)
class Shard:
    """Which rows of each global batch this process trains on."""

    rank: int
    world: int
    global_batch: int

    @property
    def per_process_batch(self) -> int:
        return self.global_batch // self.world

    def rows(self) -> slice:
        b = self.per_process_batch
        return slice(self.rank * b, (self.rank + 1) * b)
