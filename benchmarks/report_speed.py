"""How long `gan compare` takes for 4 runs of 100 epochs, and `gan report` for one (goal: under
10 s for the comparison on the project's 2-core machine).

The runs are synthetic run directories shaped like what `gan train` writes (the test suite's
fixtures: 100 metrics rows, four 8x8 sample grids, three quality rows each), so the figure
measures the documents, not training. Each command runs in a fresh interpreter, as a user
would run it, timed from start to exit (imports of matplotlib and WeasyPrint included).

    python benchmarks/report_speed.py            # prints seconds per command, best of --rounds
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from report_fixtures import write_run


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gan_dist", *args], check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        runs = [write_run(root, name=f"run{i}", config={"seed": i}) for i in range(args.runs)]
        compare = ["compare", *map(str, runs)] + ["-o", str(root / "compare.pdf"), "--force"]
        report = ["report", str(runs[0]), "--force"]
        for name, cmd in ((f"gan compare ({args.runs} runs x 100 epochs)", compare),
                          ("gan report (1 run x 100 epochs)", report)):
            times = [timed(cmd) for _ in range(args.rounds)]
            print(f"{name}: best {min(times):.2f} s, all {', '.join(f'{t:.2f}' for t in times)}")


if __name__ == "__main__":
    main()
