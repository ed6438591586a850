"""The one exception type users see: a message that names the problem and the fix."""


class GanError(Exception):
    """Bad input or an impossible request. The CLI prints it on one line and exits 2."""

    exit_code = 2
