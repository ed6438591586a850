"""How a multi-process run fails: one line naming the root cause, and how long a process waits
for a peer that has gone silent.

When one process dies, every other process sees its sockets close in the middle of a
collective and fails too. Those are echoes: each node's launcher still reports its own
processes, but an echo says that it is one and points at the node with the cause, so the job
log shows the cause once. A process that is gone without closing its sockets (a node that
lost power, a hung or stopped process) is noticed when a collective has waited
GAN_COLLECTIVE_TIMEOUT seconds (default 600, as NCCL's; read in environment.py); longer than
any work the main process does alone (samples, evaluation, checkpoints) while the others wait.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Mapping
from typing import Any

# What gloo / torch.distributed say when the other side of a collective is gone or silent.
_PEER_LOST = re.compile(r"(Connection (?:closed|reset) by peer(?: \[[^\]]*\]:\d+)?|Broken pipe"
                        r"|Socket Timeout|Timed out waiting \d+ms[^.]*)")


def echo_of_peer(message: str) -> str | None:
    """The short gloo phrase when `message` is a peer's failure seen from here, else None."""
    match = _PEER_LOST.search(message)
    return match.group(1) if match else None


def describe(rank: int, exitcode: int, data: Mapping[str, Any] | None, where: str = "") -> str:
    """One line for one failed process; `data` is what the worker wrote to its error file."""
    who = f"process {rank}{where}"
    message = data.get("message") if isinstance(data, Mapping) else None
    if isinstance(message, str) and message and message != "<NONE>":
        phrase = echo_of_peer(message)
        if phrase is not None:
            waited = "timed out" in phrase.lower()
            return (f"{who} stopped because another process of the run "
                    f"{'did not answer' if waited else 'went away'} ({phrase}); "
                    "the cause is on the failing node's own error line, if it could still write one")
        return f"{who} failed: {message}"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"{who} was killed by {name} (out of memory, or killed from outside)"
    return f"{who} exited with status {exitcode} without an error message"


def root_cause(failures: Mapping[int, Any], where: str = "") -> str:
    """The earliest real failure among this node's processes (torch elastic's
    ProcessFailure objects by global rank); echoes of other nodes only when nothing else."""
    ranked = []
    for rank, failure in failures.items():
        data = failure.error_file_data if isinstance(failure.error_file_data, dict) else {}
        message = data.get("message")
        is_echo = isinstance(message, str) and echo_of_peer(message) is not None
        ranked.append((is_echo, data.get("gan_time", float("inf")), rank,
                       describe(rank, failure.exitcode, data, where)))
    return min(ranked)[3]
