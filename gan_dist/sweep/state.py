"""Each point's state, read from its run directory (status.json and metrics.jsonl, as `gan runs`
reads them) and, for points submitted to Slurm, from the queue; and which points to run.

    pending    never started          queued     waiting in the Slurm queue (or requeued)
    running    training now           stopped    checkpointed and stopped (resumable)
    killed     died without a word    failed     ended with an error (resumable)
    diverged   a loss became NaN      finished   every epoch in metrics.jsonl
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gan_dist.report.runs_table import is_run_dir, summarize_run
from gan_dist.sweep.spec import Point, Sweep, read_submissions

FINISHED, DIVERGED = "finished", "diverged"
IN_FLIGHT = ("queued", "running")
# squeue's states of a task that is not (yet) running
_RUNNING_IN_QUEUE = {"RUNNING", "CONFIGURING", "COMPLETING", "SIGNALING", "STAGE_OUT"}


@dataclass(frozen=True)
class PointState:
    point: Point
    state: str
    epochs_done: int
    epochs_total: int
    last: dict[str, Any]  # summarize_run's figures: g_loss, d_loss, fd, fd_epoch (None when absent)
    slurm: str | None     # the Slurm task that last took the point: "ARRAYJOB_TASK"


def slurm_jobs(folder) -> dict[int, int]:
    """Point index -> the array job id of its latest Slurm submission."""
    jobs: dict[int, int] = {}
    for row in read_submissions(folder):
        if row.get("executor") == "slurm" and isinstance(row.get("job_id"), int):
            jobs.update({int(i): row["job_id"] for i in row.get("points", [])})
    return jobs


def point_states(sweep: Sweep, queue: dict[tuple[int, int], str] | None) -> list[PointState]:
    """`queue`: squeue's {(array job id, task id): state}, or None where Slurm cannot be asked."""
    jobs = slurm_jobs(sweep.folder)
    return [_state(sweep, p, jobs.get(p.index), queue) for p in sweep.points]


def _state(sweep: Sweep, point: Point, job: int | None, queue) -> PointState:
    run_dir = sweep.run_dir(point)
    total = int(point.config["epochs"])
    if is_run_dir(run_dir):
        summary = summarize_run(run_dir)
        state, done = summary["status"], summary["epochs_done"]
    else:
        summary, state, done = {}, "pending", 0
    if done >= total or state == FINISHED:
        state = FINISHED
    elif job is not None and queue is not None:
        in_queue = queue.get((job, point.index))
        if in_queue is not None:
            state = "running" if in_queue in _RUNNING_IN_QUEUE else "queued"
        elif state == "running":  # gone from the queue: its status.json is stale
            state = "killed"
    last = {k: summary.get(k) for k in ("g_loss", "d_loss", "fd", "fd_epoch")}
    return PointState(point, state, done, total, last, f"{job}_{point.index}" if job is not None else None)


def select(states: list[PointState], *, retry_diverged: bool) -> tuple[list[PointState], dict[str, list[PointState]]]:
    """(the points to run now, the others by why they are left alone)."""
    todo: list[PointState] = []
    left: dict[str, list[PointState]] = {}
    for s in states:
        if s.state == FINISHED or s.state in IN_FLIGHT or (s.state == DIVERGED and not retry_diverged):
            left.setdefault(s.state, []).append(s)
        else:
            todo.append(s)
    return todo, left


def counts(states: list[PointState]) -> str:
    """'3 finished, 1 running'."""
    tally: dict[str, int] = {}
    for s in states:
        tally[s.state] = tally.get(s.state, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(tally.items(), key=lambda kv: -kv[1]))
