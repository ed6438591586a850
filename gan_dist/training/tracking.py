"""Trackers: what a run reports while it trains, through Accelerate's tracker API.

metrics.jsonl (RunDir) is the tracker the report reads; `--log-with NAME` adds one of
Accelerate's (TensorBoard: event files in RUN_DIR/tb). Steps are global optimiser steps,
so a resumed run continues the same curves: TensorBoard is opened with `purge_step` just past
the resumed step, which hides whatever a killed run had logged after its checkpoint, so no step
appears twice or goes backwards. Off the main process every call does nothing (Accelerate's
trackers only exist there).
"""

from __future__ import annotations

import json
from typing import Any


class Tracking:
    """One object the loop reports to: scalars, epoch rows, images, quality, the config."""

    def __init__(self, accelerator, name: str | None, *, start_step: int, config: dict[str, Any]):
        self.accelerator = accelerator
        self.name = name
        if name is None:
            return
        if name == "tensorboard":
            # hparams would open a new timestamped folder per launch: the config goes in as text
            # what was logged AT start_step came before its checkpoint; later steps died with the run
            accelerator.init_trackers("tb", init_kwargs={"tensorboard": {"purge_step": start_step + 1}})
            accelerator.log({"config": "```\n" + json.dumps(config, indent=2) + "\n```"}, step=start_step)
        else:
            accelerator.init_trackers("tb", config=_hparams(config))

    @property
    def active(self) -> bool:
        return self.name is not None

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.active:
            self.accelerator.log(values, step=step)

    def epoch_row(self, row: dict[str, Any], step: int) -> None:
        keys = ("g_loss", "d_loss", "d_real", "d_fake", "seconds", "images_per_second")
        self.scalars({f"epoch/{k}": row[k] for k in keys} | {"epoch/epoch": row["epoch"]}, step)

    def quality(self, row: dict[str, Any], step: int) -> None:
        self.scalars({f"quality/{k}": v for k, v in row.items()
                      if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)}, step)

    def images(self, tag: str, images, step: int) -> None:
        """`images`: (N, C, H, W) floats in [-1, 1]."""
        if not self.active or not self.accelerator.is_main_process:
            return
        tracker = self.accelerator.get_tracker(self.name)
        if hasattr(tracker, "log_images") and self.name == "tensorboard":
            tracker.log_images({tag: images.add(1).div(2).clamp(0, 1)}, step=step)


def _hparams(config: dict[str, Any]) -> dict[str, Any]:
    """The resolved config as hyperparameters: trackers take scalars and strings only."""
    return {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in config.items()
            if not isinstance(v, dict)}
