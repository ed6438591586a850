"""What slurm/train.sh runs for one task of a sweep's job array:

    python -m gan_dist.sweep.task SWEEP_DIR TASK_ID

prints the point's run folder (its --out), its run name (--name) and its `gan train` options,
one per line (no shell quoting involved), or one `error: ...` line and exit status 2. The
script then trains it exactly as it trains a single job (placement flags, --resume auto,
preemption and requeue). The point's options come from sweep.json (spec.option_args), the
folder from where sweep.json lies now.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from gan_dist.errors import GanError
from gan_dist.sweep.spec import option_args, read_sweep


def task_lines(folder: str, task_id: str) -> list[str]:
    if not task_id.strip().isdigit():
        raise GanError(f"array task id {task_id!r} is not a number: GAN_SWEEP is for job arrays "
                       "submitted by `gan sweep --slurm`")
    sweep = read_sweep(Path(folder))
    point = sweep.point(int(task_id))
    lines = [str(sweep.folder.resolve()), point.name, *option_args(point.options)]
    if any("\n" in line for line in lines):
        raise GanError(f"point {point.name} has a value with a line break, which train.sh cannot pass on")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if len(argv) != 2:
            raise GanError("usage: python -m gan_dist.sweep.task SWEEP_DIR TASK_ID")
        print("\n".join(task_lines(*argv)))
    except GanError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
