"""What users see when something goes wrong: the one exception type (a message that names the
problem and the fix) and the one-line warning."""

import sys


class GanError(Exception):
    """Bad input or an impossible request. The CLI prints it on one line and exits 2."""

    exit_code = 2


def warn(message: str) -> None:
    """A warning users must see, on one line on stderr (callers print it on one process only)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)
