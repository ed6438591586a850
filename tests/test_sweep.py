"""`gan sweep`: grids, names, sweep.json and bad input (units and CliRunner); a real --local
sweep (2 points at once, one diverging); a real 4-point job array on the two-node Slurm cluster
of tests/test_slurm.py (its `slurm` fixture: a cluster of this module's own), one task
preempted with USR1, requeued and resumed exactly; `gan sweep status` and `gan compare OUT/NAME`
read back.

    pytest tests/test_sweep.py -m "not slurm"      # all but the cluster (about 1 min)
    pytest -rA tests/test_sweep.py -m slurm        # the job array (about 3 min; -rA: timings)
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import FAST, gan, pdf_rows, pdf_text
from test_slurm import ALIVE, ENDED, max_weight_diff, read_metrics, slurm  # noqa: F401 (slurm: the fixture)
from typer.testing import CliRunner

from gan_dist.cli import app
from gan_dist.config import NAME_PATTERN, TrainConfig
from gan_dist.errors import GanError
from gan_dist.sweep.grid import float_text, grid_from_toml, parse_grid_args, point_name
from gan_dist.sweep.local import plan_shares
from gan_dist.sweep.slurm import array_spec
from gan_dist.sweep.spec import build_sweep, option_args, read_submissions, train_args, write_sweep
from gan_dist.sweep.task import task_lines

sys.path.insert(0, str(Path(__file__).parent))
from report_fixtures import write_run  # noqa: E402

CORES = len(os.sched_getaffinity(0))


# ---- grids and names -------------------------------------------------------------------------
def test_floats_are_named_the_short_exact_way():
    assert [float_text(x) for x in (2e-4, 0.0002, 1e-3, 1.5e-5, 0.05, 0.5, 3.0, 1e30, 0.0, -1.0)] == \
        ["2e-4", "2e-4", "1e-3", "1.5e-5", "0.05", "0.5", "3.0", "1e30", "0.0", "-1.0"]
    for x in (2e-4, 1.5e-5, 1e30, 1.2345678901234e-7):
        assert float(float_text(x)) == x


def test_point_names_are_valid_run_names():
    names = [point_name(v) for v in ({"lr": 2e-4, "seed": 1}, {"loss": "minimax", "conditional": True},
                                     {"dataset": "folder:/data/my pets", "batch_size": 64})]
    assert names == ["lr=2e-4,seed=1", "loss=minimax,conditional=true", "dataset=folder-data-my-pets,batch-size=64"]
    for name in names:
        assert NAME_PATTERN.match(name)
        TrainConfig(name=name).validate()  # gan train accepts it as --name


def test_command_line_and_toml_grids_agree():
    from_flags = parse_grid_args(["lr=0.0002,1e-3", "batch_size=100,500", "conditional=true,false"])
    from_toml = grid_from_toml({"lr": [2e-4, 1e-3], "batch-size": [100, 500], "conditional": [True, False]}, "t")
    assert from_flags == from_toml == {"lr": [2e-4, 1e-3], "batch_size": [100, 500], "conditional": [True, False]}


def test_array_spec_and_core_shares():
    assert array_spec([0, 1, 2, 5], 2) == "0-2,5%2"
    assert array_spec([3], None) == "3" and array_spec([1, 3, 4], None) == "1,3-4"
    assert plan_shares(4, 4, [0, 1]) == [[0], [1]]          # never more points than cores
    assert plan_shares(1, 3, [0, 1, 2, 3]) == [[0, 1, 2, 3]]
    assert plan_shares(3, 2, list(range(8))) == [[0, 1, 2, 3], [4, 5, 6, 7]]  # never more than points
    assert plan_shares(3, 9, list(range(8))) == [[0, 1], [2, 3], [4, 5]]      # equal, disjoint


def test_points_train_exactly_as_validated(tmp_path):
    """Each point's `gan train` arguments (bool flags both ways, lists, floats) resolve to the
    config sweep.json recorded: the one validation, and no drift between the two."""
    options = {"dataset": "mnist-sample", "arch": "dcgan", "width": 8, "sync_bn": False, "cpu": True,
               "sample_epochs": (1, 2), "epochs": 2, "d_dropout": 0.0, "ema_kimg": 0.5, "batch_size": 100}
    sweep = build_sweep("s", tmp_path / "s", {"lr": [2e-4, 1e-3], "conditional": [True, False]}, options)
    assert [p.name for p in sweep.points] == ["lr=2e-4,conditional=true", "lr=2e-4,conditional=false",
                                              "lr=1e-3,conditional=true", "lr=1e-3,conditional=false"]
    assert "--no-sync-bn" in option_args(sweep.points[0].options)
    for point in sweep.points:
        result = CliRunner().invoke(app, ["train", *train_args(sweep, point), "--dry-run"])
        assert result.exit_code == 0, result.output
        resolved = json.loads(result.output)
        assert resolved.pop("resume") == "auto" and point.config.pop("resume") is None
        assert resolved == point.config


def test_array_task_reads_its_point(tmp_path):
    sweep = build_sweep("s", tmp_path / "s", {"seed": [0, 1, 2]}, {"epochs": 2, "cpu": True})
    write_sweep(sweep)
    assert task_lines(str(sweep.folder), "1") == [str(sweep.folder.resolve()), "seed=1", "--epochs", "2", "--cpu",
                                                  "--seed", "1"]
    for task_id, message in (("3", "has points 0..2, not 3"), ("", "is not a number")):
        with pytest.raises(GanError, match=message):
            task_lines(str(sweep.folder), task_id)
    proc = subprocess.run([sys.executable, "-m", "gan_dist.sweep.task", str(tmp_path / "nope"), "0"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: ") and "is not a sweep (no sweep.json)" in proc.stderr


def test_a_toml_sweep_is_the_same_sweep(tmp_path):
    toml = tmp_path / "sweep.toml"
    toml.write_text('dataset = "mnist-sample"\nepochs = 2\n\n[sweep]\nlr = [2e-4, 1e-3]\nseed = [0, 1]\n')
    result = CliRunner().invoke(app, ["sweep", "s", "--config", str(toml), "--out", str(tmp_path / "runs"),
                                      "--dry-run"])
    assert result.exit_code == 0, result.output
    assert [line.split()[4] for line in result.output.splitlines() if line.startswith("would run")] == \
        ["lr=2e-4,seed=0", "lr=2e-4,seed=1", "lr=1e-3,seed=0", "lr=1e-3,seed=1"]
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing


def test_sweep_name_status_and_run_are_told_apart(tmp_path):
    """`gan sweep NAME ...` is `gan sweep run NAME ...`; `status` is a sub-command, never a name."""
    out = str(tmp_path / "runs")
    short = CliRunner().invoke(app, ["sweep", "s", "--grid", "seed=0,1", "--out", out, "--dry-run"])
    long = CliRunner().invoke(app, ["sweep", "run", "s", "--grid", "seed=0,1", "--out", out, "--dry-run"])
    assert short.exit_code == long.exit_code == 0 and short.output == long.output
    assert "would run point 1 seed=1 (pending) with local" in short.output
    named = CliRunner().invoke(app, ["sweep", "run", "status", "--grid", "seed=0", "--out", out])
    assert named.exit_code == 2 and "sweep name 'status' is not usable" in named.output
    missing = CliRunner().invoke(app, ["sweep", "status", "s", "--out", out])
    assert missing.exit_code == 2 and "is not a sweep (no sweep.json)" in missing.output
    assert not (tmp_path / "runs").exists()


# ---- bad input: one line, exit 2, nothing written or submitted -----------------------------
def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


BAD = {
    "not an option": (["--grid", "lrr=1e-4,2e-4"], "grid key 'lrr' is not a gan train option (did you mean 'lr'?)"),
    "fails validation": (["--grid", "lr=2e-4,-1"], "point lr=-1.0: --lr must be positive"),
    "named point": (["--grid", "seed=0,1", "--grid", "batch-size=100,0"], "point seed=0,batch-size=0: --batch-size "
                                                                          "must be at least 1"),
    "empty grid": ([], "the grid is empty"),
    "empty value": (["--grid", "lr="], "has an empty value"),
    "not a number": (["--grid", "batch-size=100,big"], "'big' is not a whole number"),
    "both executors": (["--grid", "lr=2e-4", "--slurm", "--local"], "--slurm and --local exclude each other"),
    "name given": (["--grid", "lr=2e-4", "--name", "x"], "--name cannot be given to gan sweep"),
    "grid and option": (["--grid", "lr=1e-4", "--lr", "2e-4"], "--lr is both a grid key and a fixed option"),
    "nodes here": (["--grid", "lr=2e-4", "--nodes", "2", "--local"], "--nodes 2 needs Slurm"),
    "sbatch missing": (["--grid", "lr=2e-4", "--slurm"], "sbatch is not on PATH"),
    "other grid": (["--grid", "lr=1e-4,5e-4"], "exists with another grid (lr=2e-4,1e-3; given: lr=1e-4,5e-4)"),
    "other options": (["--grid", "lr=2e-4,1e-3", "--epochs", "5"], "exists with other options (--epochs 2 there, "
                                                                    "5 now)"),
    "not a sweep": (["--grid", "lr=2e-4"], "exists and is not a sweep"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, case):
    args, message = BAD[case]
    out = tmp_path / "runs"
    name = "s"
    if case in ("other grid", "other options"):
        write_sweep(build_sweep(name, out / name, {"lr": [2e-4, 1e-3]}, {"epochs": 2}))
    if case == "not a sweep":
        (out / name).mkdir(parents=True)
        (out / name / "notes.txt").write_text("precious")
    env = {"PATH": str(tmp_path / "empty-bin")} if case == "sbatch missing" else None
    before = _tree(tmp_path)
    result = CliRunner().invoke(app, ["sweep", name, "--out", str(out), *args], env=env)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert message in lines[0]
    assert _tree(tmp_path) == before


@pytest.mark.skipif(not any((Path(d) / "sbatch").exists() for d in os.get_exec_path()), reason="needs sbatch")
def test_sbatch_refusing_a_new_sweep_leaves_nothing(tmp_path):
    """A real sbatch that refuses (an empty Slurm configuration): the new sweep is undone."""
    (tmp_path / "empty.conf").write_text("")  # a missing file would make sbatch retry for 60 s
    proc = gan("sweep", "s", "--grid", "lr=2e-4,1e-3", "--slurm", "--out", tmp_path / "runs", check=False,
               env={"SLURM_CONF": str(tmp_path / "empty.conf")})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "sbatch refused the job array" in proc.stderr and "nothing was submitted" in proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["empty.conf"]  # no runs/, no runs/s


def _joined(text: str) -> str:
    """Words the PDF hyphenated at a line end, whole again."""
    return text.replace("\u2010 ", "")


# ---- the sweep's PDF, from synthetic point runs -------------------------------------------
FDS = {("2e-4", "nonsaturating"): (10.0, 14.0), ("2e-4", "minimax"): (20.0, 21.0),
       ("1e-3", "nonsaturating"): (8.0, 9.0), ("1e-3", "minimax"): (30.0, 50.0)}


@pytest.fixture(scope="module")
def synthetic_sweep(tmp_path_factory):
    """lr x loss x seed, every point with a known FD; the last point stopped after 50 epochs."""
    root = tmp_path_factory.mktemp("synthetic")
    sweep = build_sweep("grid", root / "grid", {"lr": [2e-4, 1e-3], "loss": ["nonsaturating", "minimax"],
                                                 "seed": [0, 1]}, {"epochs": 100})
    write_sweep(sweep)
    for point in sweep.points:
        last = point.index == len(sweep.points) - 1
        fd = FDS[(float_text(point.values["lr"]), point.values["loss"])][point.values["seed"]]
        run = write_run(sweep.folder, name=point.name, config=point.config, quality=False, world_size=1,
                        completed=50 if last else 100, state="stopped" if last else "finished")
        (run / "quality.jsonl").write_text(json.dumps({"epoch": 50 if last else 100, "fd": fd}) + "\n")
    return sweep


def test_sweep_pdf_groups_seeds_into_a_matrix_without_torch(synthetic_sweep, tmp_path):
    pdf = tmp_path / "grid.pdf"
    code = ("import sys; from gan_dist.report.compare import render_compare; "
            f"render_compare([{str(synthetic_sweep.folder)!r}], {str(pdf)!r}); sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
    rows, text = pdf_rows(pdf), _joined(pdf_text(pdf))
    assert "Fréchet distance at the last evaluated epoch (fd; lower is better)" in text
    assert "7 points count towards the best point and the means" in text  # the stopped one does not
    assert "lr \\ loss nonsaturating minimax" in rows
    assert "2e-4 12.00 ± 2.83 (2 seeds) 20.50 ± 0.71 (2 seeds)" in rows
    assert "1e-3 8.50 ± 0.71 (2 seeds) 30.00 (1 seed)" in rows
    assert "7 1e-3 minimax 1 stopped 50/100 50.00 (50)" in " ".join(rows)
    assert "Best point: lr=1e-3,loss=nonsaturating,seed=0 with fd 8.00 at epoch 100." in text
    assert "Best setting over seeds: lr=1e-3,loss=nonsaturating with fd 8.50 ± 0.71 over 2 seeds." in text


def test_sweep_pdf_metric_choice_and_bad_input(synthetic_sweep, tmp_path):
    result = CliRunner().invoke(app, ["compare", str(synthetic_sweep.folder), "-o", str(tmp_path / "g.pdf"),
                                      "--metric", "g_loss"])
    assert result.exit_code == 0, result.output
    assert "generator loss of the last epoch (g_loss; lower is better)" in _joined(pdf_text(tmp_path / "g.pdf"))
    for args, message in ((["--metric", "fid"], "unknown metric 'fid' (did you mean 'fd'?)"),
                          (["-o", str(tmp_path / "g.pdf")], "already exists"),
                          (["-o", str(tmp_path / "x.png")], "does not end in .pdf")):
        before = _tree(tmp_path)
        bad = CliRunner().invoke(app, ["compare", str(synthetic_sweep.folder), *args])
        lines = bad.output.strip().splitlines()
        assert bad.exit_code == 2 and len(lines) == 1 and message in lines[0], bad.output
        assert _tree(tmp_path) == before
    runs = CliRunner().invoke(app, ["compare", str(synthetic_sweep.folder / synthetic_sweep.points[0].name),
                                    str(synthetic_sweep.folder / synthetic_sweep.points[1].name), "--metric", "fd",
                                    "-o", str(tmp_path / "two.pdf")])
    assert runs.exit_code == 2 and "--metric is for a sweep folder" in runs.output


# ---- a real sweep on this machine ----------------------------------------------------------
LOCAL = [*FAST, "--epochs", "1", "--eval-epochs", "1"]


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """Two points at once, one of them diverging (lr 1e30), then the same sweep again."""
    out = tmp_path_factory.mktemp("local")
    first = gan("sweep", "loc", "--grid", "lr=2e-4,1e30", *LOCAL, "--local", "--max-parallel", "8", "--out", out,
                check=False)
    submissions = read_submissions(out / "loc")
    again = gan("sweep", "loc", "--out", out, check=False)
    status = gan("sweep", "status", "loc", "--out", out, check=False)
    compare = gan("compare", out / "loc", check=False)
    return {"out": out, "folder": out / "loc", "first": first, "again": again, "status": status,
            "compare": compare, "submissions": submissions}


@pytest.mark.slow
def test_local_points_share_the_cores_and_a_diverged_point_is_reported(local_sweep):
    first, folder = local_sweep["first"], local_sweep["folder"]
    parallel = min(2, CORES)
    assert first.returncode == 1, first.stderr  # not every point finished
    assert f"running 2 point(s) here, {parallel} at a time, {CORES // parallel} core(s) each" in first.stdout
    assert "point 0 lr=2e-4: finished (1/1 epochs, exit 0" in first.stdout
    assert "point 1 lr=1e30: diverged (0/1 epochs, exit 2" in first.stdout
    good = folder / "lr=2e-4"
    config = json.loads((good / "config.json").read_text())
    assert (config["name"], config["out"], config["lr"]) == ("lr=2e-4", str(folder), 2e-4)
    assert config["env"]["threads_per_process"] == CORES // parallel  # OMP threads = its share
    assert [m["epoch"] for m in read_metrics(good)] == [1]
    assert json.loads((folder / "lr=1e30" / "status.json").read_text())["state"] == "diverged"
    assert (folder / "logs" / "lr=1e30.log").read_text().count("training diverged") == 1
    assert [(s["executor"], s["points"], s["parallel"]) for s in local_sweep["submissions"]] == \
        [("local", [0, 1], parallel)]


@pytest.mark.slow
def test_running_it_again_runs_nothing_and_names_the_diverged_point(local_sweep):
    again = local_sweep["again"]
    assert again.returncode == 0, again.stderr
    assert "not retried, diverged: lr=1e30 (pass --retry-diverged" in again.stdout
    assert "nothing to run: 1 finished, 1 diverged" in again.stdout
    assert read_submissions(local_sweep["folder"]) == local_sweep["submissions"]  # nothing launched


@pytest.mark.slow
def test_status_and_compare_show_the_points_figures(local_sweep):
    folder = local_sweep["folder"]
    last = read_metrics(folder / "lr=2e-4")[-1]
    fd = json.loads((folder / "lr=2e-4" / "quality.jsonl").read_text().splitlines()[-1])["fd"]
    rows = [" ".join(line.replace("│", " ").split()) for line in local_sweep["status"].stdout.splitlines()]
    assert "sweep loc" in local_sweep["status"].stdout and local_sweep["status"].returncode == 0
    assert f"0 2e-4 finished 1/1 {last['g_loss']:.4f} {last['d_loss']:.4f} {fd:.2f} (1) -" in rows
    assert "1 1e30 diverged 0/1 - - - -" in rows
    assert local_sweep["compare"].returncode == 0, local_sweep["compare"].stderr
    pdf = folder / "sweep.pdf"
    text = _joined(pdf_text(pdf))
    assert "Sweep loc" in text and "Fréchet distance at the last evaluated epoch (fd; lower is better)" in text
    assert f"Best point: lr=2e-4 with fd {fd:.2f} at epoch 1." in text
    assert f"0 2e-4 finished 1/1 {fd:.2f} (1) {last['g_loss']:.4f} {last['d_loss']:.4f}" in pdf_rows(pdf)
    assert "1 1e30 diverged 0/1 — — —" in pdf_rows(pdf)


@pytest.mark.slow
def test_retry_diverged_runs_only_that_point(local_sweep):
    proc = gan("sweep", "loc", "--out", local_sweep["out"], "--retry-diverged", check=False)
    assert proc.returncode == 1 and "point 1 lr=1e30: diverged" in proc.stdout
    assert "point 0" not in proc.stdout
    assert [s["points"] for s in read_submissions(local_sweep["folder"])] == [[0, 1], [1]]


# ---- a real job array on the two-node cluster --------------------------------------------
ARRAY_EPOCHS = 3
ARRAY = ["sweep", "arr", "--grid", "seed=0,1", "--grid", "keep-checkpoints=1,2", *FAST, "--epochs",
         str(ARRAY_EPOCHS), "--nodes", "2", "--slurm", "--max-parallel", "2", "--sbatch=--cpus-per-task=1",
         "--sbatch=--time=00:10:00"]
PREEMPTED, TWIN = 2, 3  # seed=1 with keep-checkpoints 1 and 2: the same training, bit for bit


def _gan(slurm, *args: str) -> subprocess.CompletedProcess:  # noqa: F811 (the fixture's value)
    """`gan ARGS...` as a user of the cluster runs it (its SLURM_CONF, PATH and Python)."""
    return subprocess.run([sys.executable, "-m", "gan_dist", *args], env=slurm.env, cwd=slurm.out,
                          capture_output=True, text=True, timeout=120)


def _running_tasks(slurm, job: int) -> int:  # noqa: F811
    proc = slurm.run("squeue", "--noheader", "--array", f"--jobs={job}", "--states=RUNNING", "--format=%i",
                     check=False)
    return len(proc.stdout.split())


@pytest.fixture(scope="module")
def job_array(slurm):  # noqa: F811
    """4 points of 2 nodes each, 2 tasks at a time; point 2 (second wave) preempted with USR1
    after its first epoch, requeued and resumed."""
    folder = slurm.out / "arr"
    t_submit = time.monotonic()
    submitted = _gan(slurm, *ARRAY, "--out", str(slurm.out))
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job = read_submissions(folder)[0]["job_id"]
    busy = _gan(slurm, "sweep", "arr", "--out", str(slurm.out))  # all 4 queued or running
    runs = [folder / f"seed={s},keep-checkpoints={k}" for s in (0, 1) for k in (1, 2)]
    t, most_running, deadline = {}, 0, time.monotonic() + 300
    preempted: dict = {}
    while not all(len(read_metrics(r)) == ARRAY_EPOCHS for r in runs):
        assert time.monotonic() < deadline, _logs(folder)
        most_running = max(most_running, _running_tasks(slurm, job))
        for i, run in enumerate(runs):
            if read_metrics(run) and i not in t:
                t[i] = time.monotonic() - t_submit
        if PREEMPTED in t and not preempted:
            preempted = _preempt(slurm, f"{job}_{PREEMPTED}", runs[PREEMPTED])
        time.sleep(0.5)
    task = slurm.wait(preempted["id"], ENDED, timeout=60)
    print(f"\njob array of 4 two-node points, 2 at a time: submit (gan sweep) -> first epoch of each task "
          f"{', '.join(f'{t[i]:.1f}' for i in sorted(t))} s; task {job}_{PREEMPTED} stopped after epochs "
          f"{preempted['epochs_before']}, USR1 -> running again {preempted['usr1_running']:.1f} s")
    again = _gan(slurm, "sweep", "arr", "--out", str(slurm.out))
    status = _gan(slurm, "sweep", "status", "arr", "--out", str(slurm.out))
    compare = _gan(slurm, "compare", str(folder))
    return {"job": job, "folder": folder, "runs": runs, "submitted": submitted, "busy": busy,
            "most_running": most_running,
            "preempted": preempted, "task": task, "again": again, "status": status, "compare": compare,
            "times": t, "queue_after": slurm.run("squeue", "--noheader", "--format=%i").stdout.split()}


def _preempt(slurm, task: str, run_dir: Path) -> dict:  # noqa: F811
    """USR1 to the task's batch script, as Slurm does before a time limit; then, like the
    preemption test of single jobs, skip the requeued job's begin-time wait (3 s: see there)."""
    own_id = slurm.job(task)["JobId"]  # the task's own job id (scancel of ARRAY_TASK errs in 22.05)
    t_signal = time.monotonic()
    slurm.run("scancel", "--batch", "--signal=USR1", own_id)
    requeued = slurm.wait(own_id, {"PENDING"} | ENDED, timeout=120, poll=0.2)
    epochs_before = [m["epoch"] for m in read_metrics(run_dir)]
    time.sleep(3)
    slurm.run("scontrol", "update", f"JobId={own_id}", "StartTime=now")
    slurm.wait(own_id, {"RUNNING"} | ENDED, timeout=90, poll=0.2)
    return {"id": own_id, "requeued": requeued, "epochs_before": epochs_before,
            "usr1_running": time.monotonic() - t_signal}


def _logs(folder: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()}" for p in sorted((folder / "logs").glob("*.out")))


@pytest.mark.slurm
@pytest.mark.slow
def test_job_array_trains_every_point_on_two_nodes_two_at_a_time(job_array):
    folder, job = job_array["folder"], job_array["job"]
    assert "submitted job array" in job_array["submitted"].stdout
    [submission] = read_submissions(folder)
    assert (submission["executor"], submission["array"], submission["points"]) == ("slurm", "0-3%2", [0, 1, 2, 3])
    assert "--array=0-3%2" in submission["command"] and "--nodes=2" in submission["command"]
    assert job_array["most_running"] <= 2
    for i, run in enumerate(job_array["runs"]):
        log = (folder / "logs" / f"{job}_{i}.out").read_text()
        assert [(m["epoch"], m["world_size"]) for m in read_metrics(run)] == \
            [(e, 2) for e in range(1, ARRAY_EPOCHS + 1)], log  # every epoch once, both nodes
        config = json.loads((run / "config.json").read_text())
        assert (config["out"], config["name"], config["env"]["num_nodes"]) == (str(folder), run.name, 2)
        assert f"job {job}_{i} restart 0 (max 3) on n[1-2]" in log and "training finished" in log


@pytest.mark.slurm
@pytest.mark.slow
def test_preempted_array_task_requeues_itself_and_resumes_exactly(job_array):
    folder, job, pre = job_array["folder"], job_array["job"], job_array["preempted"]
    log = (folder / "logs" / f"{job}_{PREEMPTED}.out").read_text()
    assert pre["requeued"]["JobState"] == "PENDING", log
    assert (job_array["task"]["JobState"], job_array["task"]["Restarts"]) == ("COMPLETED", "1")
    assert 1 <= len(pre["epochs_before"]) < ARRAY_EPOCHS
    first_life = log.split(f"job {job}_{PREEMPTED} restart 1")[0]
    assert "SIGUSR1" in first_life and f"requeueing job {job}_{PREEMPTED} (restart 1 of at most 3)" in first_life
    assert f"job {job}_{PREEMPTED} restart 1 (max 3) on n[1-2]" in log
    for i in range(4):  # the other tasks never restarted
        if i != PREEMPTED:
            assert "restart 1" not in (folder / "logs" / f"{job}_{i}.out").read_text()
    runs = job_array["runs"]
    assert max_weight_diff(runs[PREEMPTED], runs[TWIN]) == 0.0  # preempted = uninterrupted, bit for bit


@pytest.mark.slurm
@pytest.mark.slow
def test_points_in_flight_are_not_submitted_twice(job_array):
    busy = job_array["busy"]
    assert busy.returncode == 0 and "nothing to run:" in busy.stdout, busy.stdout + busy.stderr
    assert "pending" not in busy.stdout and "killed" not in busy.stdout
    assert sum(busy.stdout.count(f"{state}:") for state in ("queued", "running")) >= 1  # "left alone, ..."


@pytest.mark.slurm
@pytest.mark.slow
def test_running_the_finished_array_again_submits_nothing(job_array):
    again = job_array["again"]
    assert again.returncode == 0 and "nothing to run: 4 finished" in again.stdout, again.stderr
    assert len(read_submissions(job_array["folder"])) == 1
    assert job_array["queue_after"] == []


@pytest.mark.slurm
@pytest.mark.slow
def test_array_status_and_compare_read_back(job_array):
    job, runs = job_array["job"], job_array["runs"]
    status = job_array["status"]
    assert status.returncode == 0 and "4 finished" in status.stdout, status.stderr
    rows = [" ".join(line.replace("│", " ").split()) for line in status.stdout.splitlines()]
    finals = [read_metrics(r)[-1] for r in runs]
    for i, (seed, keep) in enumerate([(0, 1), (0, 2), (1, 1), (1, 2)]):
        assert (f"{i} {seed} {keep} finished 3/3 {finals[i]['g_loss']:.4f} {finals[i]['d_loss']:.4f} - "
                f"{job}_{i}") in rows
    compare = job_array["compare"]
    assert compare.returncode == 0, compare.stderr
    pdf = job_array["folder"] / "sweep.pdf"
    text, table = _joined(pdf_text(pdf)), pdf_rows(pdf)
    assert "generator loss of the last epoch (g_loss; lower is better)" in text and "weak proxy" in text
    g = [f["g_loss"] for f in finals]
    for keep, (a, b) in ((1, (g[0], g[2])), (2, (g[1], g[3]))):  # over seeds 0 and 1
        mean, sd = statistics.fmean([a, b]), statistics.stdev([a, b])
        assert f"{keep} 2 {mean:.4f} {sd:.4f} {min(a, b):.4f} {max(a, b):.4f}" in table
    best = min(range(4), key=lambda i: g[i])
    assert f"Best point: {runs[best].name} with g_loss {g[best]:.4f} at epoch 3." in text
