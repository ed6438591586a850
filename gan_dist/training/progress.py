"""The state of training besides weights, optimisers and RNG: the epoch in progress and the
rows of the epochs done. Each piece saves and loads itself (`state_dict` / `load_state_dict`,
plain JSON: nothing unpickled); training/checkpoint.py puts them in trainer_state.json."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

SLOTS = 6  # the statistics summed per epoch: d_loss, d_real, d_fake, g_loss, r1, r2


@dataclass
class EpochProgress:
    """The epoch in progress. Statistics stay on the device between sync points; the clock
    counts this epoch's training time, across lives (a mid-epoch resume adds to `seconds`)."""

    sums: torch.Tensor  # (SLOTS,): d_loss, d_real, d_fake, g_loss, r1, r2 summed over the epoch's steps
    g_steps: int = 0
    seconds: float = 0.0  # training time of this epoch in earlier lives
    started: float = field(default_factory=time.perf_counter)  # this life's clock

    @classmethod
    def fresh(cls, device) -> "EpochProgress":
        return cls(torch.zeros(SLOTS, device=device))

    def record(self, stats) -> None:
        """Add one step's statistics (training/steps.py StepStats), on the device: no host sync."""
        self.sums[[0, 1, 2, 4, 5]] += torch.stack([stats.d_loss, stats.d_real, stats.d_fake, stats.r1, stats.r2])
        if stats.g_loss is not None:
            self.sums[3] += stats.g_loss
            self.g_steps += 1

    def restart_clock(self) -> None:
        self.started = time.perf_counter()

    def elapsed_seconds(self, accelerator) -> float:
        """Collective: this epoch's training time so far, the mean over processes."""
        here = torch.tensor([time.perf_counter() - self.started], device=self.sums.device)
        return self.seconds + accelerator.reduce(here, "mean").item()

    def state_dict(self, accelerator, steps_done: int) -> dict:
        """Collective. Every process's exact float32 sums (each process resumes with its own, so
        the epoch's row repeats exactly)."""
        per_rank = accelerator.gather(self.sums.unsqueeze(0))  # (world, SLOTS)
        g_steps = accelerator.gather(torch.tensor([self.g_steps], device=self.sums.device))
        return {"sums": per_rank.tolist(), "steps_done": steps_done, "g_steps": g_steps.tolist(),
                "seconds": self.elapsed_seconds(accelerator)}

    def load_state_dict(self, state: dict, rank: int, world: int) -> None:
        """Rank `rank`'s share of a saved epoch in progress. Resumed on another number of
        processes, every process takes the mean (a valid continuation, not a bit-identical one)."""
        sums, g_steps = [row + [0.0] * (SLOTS - len(row)) for row in state["sums"]], state["g_steps"]  # older: 4 slots
        if len(sums) == world:
            mine, my_g = sums[rank], g_steps[rank]
        else:
            mine, my_g = torch.tensor(sums).mean(0).tolist(), round(sum(g_steps) / len(g_steps))
        self.sums = torch.tensor(mine, dtype=torch.float32, device=self.sums.device)
        self.g_steps, self.seconds = int(my_g), float(state["seconds"])
        self.restart_clock()


@dataclass
class History:
    """metrics.jsonl's rows of the epochs done: restored with the checkpoint, so a resumed run
    rewrites metrics.jsonl to exactly the epochs its checkpoint holds."""

    rows: list[dict] = field(default_factory=list)

    @property
    def elapsed_seconds(self) -> float:
        return self.rows[-1]["elapsed_seconds"] if self.rows else 0.0

    def append(self, row: dict) -> None:
        self.rows.append(row)

    def state_dict(self) -> dict:
        return {"history": self.rows}

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state["history"])


@dataclass
class LogWindow:
    """What the per-step tracker log covers: the statistics since the last log."""

    sums: torch.Tensor
    g_steps: int
    step: int  # steps done in the epoch at the last log

    @classmethod
    def start(cls, progress: EpochProgress, step: int) -> "LogWindow":
        return cls(progress.sums.clone(), progress.g_steps, step)

    def due(self, step: int, log_every: int) -> bool:
        return step - self.step >= log_every

    def delta(self, progress: EpochProgress) -> torch.Tensor:
        """(SLOTS + 1,): the summed statistics and G steps since the last log; all-reduce it."""
        g = torch.tensor([float(progress.g_steps - self.g_steps)], device=progress.sums.device)
        return torch.cat([progress.sums - self.sums, g])

    @staticmethod
    def means(summed: list[float], world: int, steps: int, penalties: bool = False) -> dict[str, float]:
        """Means over the window's steps and every process, from the all-reduced delta."""
        d_loss, d_real, d_fake, g_loss, r1, r2, g_steps = summed
        values = {"loss/d": d_loss / world / steps, "d/real": d_real / world / steps, "d/fake": d_fake / world / steps}
        if g_steps:
            values["loss/g"] = g_loss / g_steps  # g_steps is summed over processes too
        if penalties:
            values |= {"penalty/r1": r1 / world / steps, "penalty/r2": r2 / world / steps}
        return values
