"""One training process: `python -m gan_dist.training.worker CONFIG.json`, started by the launcher.

On failure it writes its one-line error (and the traceback) to the error file torch's
elastic agent gives it, and exits 1 silently: the launcher prints the root cause once.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path


def record_failure(err: BaseException) -> None:
    message = str(err) if type(err).__name__ == "GanError" else f"{type(err).__name__}: {err}"
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    data = {"message": message, "timestamp": int(time.time()), "gan_time": time.time(),
            "gan_user_error": type(err).__name__ == "GanError", "traceback": traceback.format_exc()}
    if path:
        Path(path).write_text(json.dumps(data))
    else:  # not under the elastic agent: say it here
        print(f"error: {message}", file=sys.stderr)


def main(argv: list[str]) -> int:
    from gan_dist.config import TrainConfig
    from gan_dist.training.launch import configure_threads
    from gan_dist.training.loop import train

    cfg = TrainConfig.from_dict(json.loads(Path(argv[0]).read_text()))
    configure_threads()
    try:
        code = train(cfg)
        marker = os.environ.get("GAN_STOPPED_MARKER")
        if code and marker:  # the elastic agent calls any non-zero exit a crash
            Path(marker).touch()
            return 0
        return code
    except BaseException as err:  # noqa: BLE001 - every failure must reach the launcher
        if isinstance(err, SystemExit):
            raise
        record_failure(err)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
