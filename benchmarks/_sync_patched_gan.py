"""`gan` with the loop's sync interval fixed by the first argument, for long_run_costs.py only:
`python _sync_patched_gan.py EVERY train ...` (a benchmark knob, not a user option)."""

import sys

from gan_dist.training import loop

every = int(sys.argv.pop(1))
loop.sync_interval = lambda device: every

from gan_dist.cli import main  # noqa: E402

main()
