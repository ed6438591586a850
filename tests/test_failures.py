"""The one line a failed multi-process run prints: root cause first, echoes labelled as such."""

from __future__ import annotations

import json

import pytest
from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

from gan_dist.errors import GanError
from gan_dist.training.failures import (
    describe,
    echo_of_peer,
    root_cause,
)

# What gloo said on the surviving node of a 2-node Slurm job whose other worker got kill -9.
GLOO_CLOSED = ("RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] "
               "Connection closed by peer [127.0.0.1]:29077. This is typically caused by a remote "
               "worker crashing. Check the logs of the remote worker before reporting an error.")
GLOO_TIMEOUT = ("RuntimeError: [../third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:81] "
                "Timed out waiting 15000ms for recv operation to complete")


def failure(tmp_path, rank: int, exitcode: int, message: str | None = None, when: float = 0.0):
    path = tmp_path / f"error-{rank}.json"
    if message is not None:  # what gan_dist.training.worker writes
        path.write_text(json.dumps({"message": message, "timestamp": int(when), "gan_time": when}))
    return ProcessFailure(local_rank=rank, pid=1000 + rank, exitcode=exitcode, error_file=str(path))


def test_killed_process_names_the_signal(tmp_path):
    line = root_cause({1: failure(tmp_path, 1, -9)}, " on node n2")
    assert line.startswith("process 1 on node n2 was killed by SIGKILL")
    assert "<NONE>" not in line


def test_a_peer_going_away_is_called_an_echo(tmp_path):
    line = root_cause({0: failure(tmp_path, 0, 1, GLOO_CLOSED)}, " on node n1")
    assert line == ("process 0 on node n1 stopped because another process of the run went away "
                    "(Connection closed by peer [127.0.0.1]:29077); the cause is on the failing "
                    "node's own error line, if it could still write one")


def test_a_silent_peer_is_named_by_the_timeout(tmp_path):
    line = describe(0, 1, {"message": GLOO_TIMEOUT})
    assert "did not answer (Timed out waiting 15000ms for recv operation to complete)" in line


def test_the_real_error_wins_over_earlier_echoes(tmp_path):
    failures = {0: failure(tmp_path, 0, 1, GLOO_CLOSED, when=1.0),
                1: failure(tmp_path, 1, 1, "RuntimeError: injected failure", when=2.0),
                2: failure(tmp_path, 2, 1, "ValueError: later", when=3.0)}
    assert root_cause(failures) == "process 1 failed: RuntimeError: injected failure"


def test_plain_exit_without_message(tmp_path):
    assert root_cause({3: failure(tmp_path, 3, 7)}) == \
        "process 3 exited with status 7 without an error message"


@pytest.mark.parametrize("message", ["ValueError: bad shape", "GanError text", ""])
def test_ordinary_errors_are_not_echoes(message):
    assert echo_of_peer(message) is None


def test_collective_timeout_setting():
    from gan_dist.environment import RunEnvironment

    assert RunEnvironment.read({}).collective_timeout_seconds == 600
    assert RunEnvironment.read({"GAN_COLLECTIVE_TIMEOUT": "45"}).collective_timeout_seconds == 45
    for bad in ("0", "ten", "-5"):
        with pytest.raises(GanError, match="GAN_COLLECTIVE_TIMEOUT"):
            RunEnvironment.read({"GAN_COLLECTIVE_TIMEOUT": bad})
