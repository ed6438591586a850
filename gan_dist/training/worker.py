"""One training process: `python -m gan_dist.training.worker LAUNCH.json`, started by the launcher.

LAUNCH.json (written by training/launch.py) holds the config, the stop files to watch, the
fault to inject (tests) and the result file; the worker reads its environment once, here. torch's elastic agent treats every non-zero exit
as a crash, so a stopped run (exit 75 when run directly) exits 0 here and says "stopped" in
the result file, which the launcher turns back into 75.

On failure the worker writes its one-line error (and the traceback) to the error file the
elastic agent gives it, and exits 1 silently: the launcher prints the root cause once.

A worker dies with its launcher (Linux: PR_SET_PDEATHSIG). The launcher holds the run's lock;
killed with -9 it cannot stop its workers, and a worker living on would write into a run
that the kernel no longer locks for anyone.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path


def record_failure(err: BaseException, error_file: str | None) -> None:
    """`error_file`: the elastic agent's TORCHELASTIC_ERROR_FILE, where it looks for our error."""
    from gan_dist.errors import GanError

    user_error = isinstance(err, GanError)
    message = str(err) if user_error else f"{type(err).__name__}: {err}"
    path = error_file
    data = {"message": message, "timestamp": int(time.time()), "gan_time": time.time(),
            "gan_user_error": user_error, "traceback": traceback.format_exc()}
    if path:
        Path(path).write_text(json.dumps(data))
    else:  # not under the elastic agent: say it here
        print(f"error: {message}", file=sys.stderr)


def die_with_launcher(launcher_pid: int | None) -> None:
    """SIGKILL this process when its parent, the launcher, dies (Linux; elsewhere nothing)."""
    if launcher_pid is None or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != launcher_pid:  # it died before we asked
        os._exit(1)


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    die_with_launcher(spec.get("launcher_pid"))

    from gan_dist.config import TrainConfig
    from gan_dist.environment import RunEnvironment
    from gan_dist.training.faults import NO_HOOKS, Fault
    from gan_dist.training.launch import start_threads
    from gan_dist.training.loop import train
    from gan_dist.training.stopping import StopRequest

    cfg = TrainConfig.from_dict(spec["config"])
    hooks = Fault.parse(spec["fault"]) if spec.get("fault") else NO_HOOKS
    error_file = os.environ.get("TORCHELASTIC_ERROR_FILE")  # before anything can fail
    try:
        env = RunEnvironment.read()  # this worker's edge: the elastic agent set its ranks
        start_threads(cfg, env)
        with StopRequest(spec["stop_files"]) as stop:
            code = train(cfg, env, should_stop=stop, hooks=hooks)
        if code:
            Path(spec["result_file"]).write_text(json.dumps({"code": code}))
        return 0
    except BaseException as err:  # noqa: BLE001 - every failure must reach the launcher
        if isinstance(err, SystemExit):
            raise
        record_failure(err, error_file)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
