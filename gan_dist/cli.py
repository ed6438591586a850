"""The `gan` command line: options in, one function call out.

Commands are thin wrappers: they turn options into plain arguments and call a function
in the module that owns the work. Heavy imports (torch) happen inside the commands, so
`gan --help` answers quickly.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from gan_dist.config import OPTIONS, flag
from gan_dist.epochs import parse_epoch_list
from gan_dist.errors import GanError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Distributed GAN training with Accelerate, and the coursework report.",
)


def _version(value: bool) -> None:
    if value:
        from gan_dist import __version__

        typer.echo(f"gan_dist {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """gan: train GANs on many processes, then write the coursework report."""


@contextlib.contextmanager
def user_errors():
    """Inside a command: a GanError becomes one line on stderr and exit status 2."""
    try:
        yield
    except GanError as err:
        fail(str(err), err.exit_code)


def fail(message: str, code: int = 2) -> None:
    """Print one line to stderr and exit: the contract for every bad input."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


# --- train -------------------------------------------------------------------------------
def _option_parameter(spec) -> inspect.Parameter:
    """One `gan train --option`, derived from its declaration in config.py."""
    import typer

    help_text = spec.help
    if spec.kind is bool and spec.nullable:  # default decided later: both ways, --sync-bn/--no-sync-bn
        annotation, info = bool | None, typer.Option(f"{flag(spec.name)}/--no-{flag(spec.name)[2:]}", help=help_text)
    elif spec.kind is bool:  # a flag: --cpu, not --cpu/--no-cpu
        annotation, info = Optional[bool], typer.Option(flag(spec.name), help=help_text)
    else:
        base = {int: int, float: float}.get(spec.kind, str)  # epoch lists arrive as "10,20"
        annotation, info = Optional[base], typer.Option(help=help_text)
    return inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[annotation, info])


def train(ctx: typer.Context, **params) -> None:
    """Train the GAN; the run directory is OUT/NAME."""
    import os

    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")  # c10d's C++ logs would break one-line errors
    from gan_dist.config import resolve_config

    config, dry_run, fault = params.pop("config"), params.pop("dry_run"), params.pop("fault")
    given = {k: v for k, v in params.items() if v is not None}
    with user_errors():
        from gan_dist.environment import RunEnvironment

        env = RunEnvironment.read()  # the one read of the environment; passed down from here
        cfg = resolve_config(config_file=config, overrides=given)
        if dry_run:
            import json

            typer.echo(json.dumps(cfg.to_dict(), indent=2))
            return
        from gan_dist.training.faults import Fault
        from gan_dist.training.launch import launch_training

        try:
            code = launch_training(cfg, explicit=set(given) | _toml_keys(config), env=env,
                                   fault=Fault.parse(fault) if fault else None)
        except KeyboardInterrupt:
            fail(f"interrupted: the newest complete checkpoint is kept; continue with --resume auto "
                 f"--name {cfg.name}", 130)
    if code:
        raise typer.Exit(code)


train.__signature__ = inspect.Signature([
    inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
    inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=Annotated[Optional[Path], typer.Option(help="TOML file of these options; flags win.")]),
    *(_option_parameter(spec) for spec in OPTIONS.values()),
    inspect.Parameter("dry_run", inspect.Parameter.KEYWORD_ONLY, default=False,
                      annotation=Annotated[bool, typer.Option("--dry-run", help="Print the resolved config; train nothing.")]),
    inspect.Parameter("fault", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=Annotated[Optional[str], typer.Option(hidden=True, help="Tests: RANK:EPOCH[:STEP[:KIND]].")]),
])
train.__annotations__ = {p.name: p.annotation for p in train.__signature__.parameters.values()}
app.command()(train)


def _toml_keys(config: Optional[Path]) -> set[str]:
    from gan_dist.config import read_toml

    return set(read_toml(config)) if config else set()


# --- other commands are registered below by their modules' owners ------------------------


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by `gan train`.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="PDF to write (default RUN_DIR/report.pdf).")] = None,
    html: Annotated[Optional[Path], typer.Option(help="Also write the HTML to this file.")] = None,
    title: Annotated[Optional[str], typer.Option(help="Report title.")] = None,
    author: Annotated[Optional[str], typer.Option(help="Author name.")] = None,
    student_id: Annotated[Optional[str], typer.Option(help="Student ID.")] = None,
    course: Annotated[Optional[str], typer.Option(help="Course name.")] = None,
    epochs: Annotated[Optional[str], typer.Option(help="Epochs whose sample grids are shown, e.g. 10,20,50,100.")] = None,
    template_dir: Annotated[Optional[Path], typer.Option(help="Directory of templates overriding the shipped ones.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output other than RUN_DIR/report.pdf.")] = False,
) -> None:
    """Render the coursework report of a run as a PDF."""
    from gan_dist.report.render import render_report

    with user_errors():
        path = render_report(run_dir, output, html=html, title=title, author=author, student_id=student_id,
                             course=course, epochs=epochs, template_dir=template_dir, force=force)
    typer.echo(f"wrote {path}")


@app.command()
def compare(
    run_dirs: Annotated[Optional[list[Path]], typer.Argument(help="Two or more run directories, or one sweep "
                                                                "folder (gan sweep's OUT/NAME).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="PDF to write (default compare.pdf; "
                                                   "a sweep: OUT/NAME/sweep.pdf).")] = None,
    html: Annotated[Optional[Path], typer.Option(help="Also write the HTML to this file.")] = None,
    title: Annotated[Optional[str], typer.Option(help="Document title.")] = None,
    template_dir: Annotated[Optional[Path], typer.Option(help="Directory of templates overriding the shipped ones.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace existing output files.")] = False,
    metric: Annotated[Optional[str], typer.Option(help="A sweep: the metric per point (fd, kid, precision, recall, "
                                                  "modes, kl_uniform, confident, g_loss; default fd when every "
                                                  "point was evaluated, else g_loss).")] = None,
) -> None:
    """Compare runs in one PDF: curves overlaid, settings that differ, scaling, final grids; or a sweep."""
    from gan_dist.report.compare import render_compare

    with user_errors():
        path = render_compare(run_dirs or [], output, html=html, title=title, template_dir=template_dir, force=force,
                              metric=metric)
    typer.echo(f"wrote {path}")


# --- sample / eval / runs (gan_dist.sampling, gan_dist.metrics.quality, gan_dist.report.runs_table) --------
@app.command()
def sample(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output file: .png grid or .npz raw uint8 (N, C, H, W).")],
    n: Annotated[int, typer.Option("-n", help="Number of images.")] = 64,
    epoch: Annotated[Optional[int], typer.Option(help="Use the generator kept at this epoch (default: final).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the noise.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT if it exists.")] = False,
    label: Annotated[int | None, typer.Option(help="Conditional runs: draw this class only.")] = None,
    per_class: Annotated[bool, typer.Option("--per-class", help="Conditional runs: N images of every class, "
                                            "one row per class.")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="Use the trained generator, not its EMA.")] = False,
) -> None:
    """Generate images from a run's generator (its EMA when the run kept one)."""
    with user_errors():
        from gan_dist.sampling import sample_run

        path = sample_run(run_dir, n=n, out=out, epoch=epoch, seed=seed, force=force, label=label,
                          per_class=per_class, raw=raw)
    typer.echo(f"wrote {path}")


@app.command("eval")
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    epochs: Annotated[Optional[str], typer.Option(help="Epochs to evaluate, e.g. 10,50,100 (default: all kept).")] = None,
    samples: Annotated[Optional[int], typer.Option(help="Generated images per epoch (default: 2,000 in classifier "
                                                   "spaces; inception: 1,000 on CPU, 50,000 on a GPU).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the noise (and of the real subset).")] = 0,
    features: Annotated[Optional[str], typer.Option(help="auto | inception (default: the run's --eval-features).")] = None,
    real_samples: Annotated[Optional[int], typer.Option(help="--features inception: real images behind the reference "
                                                        "statistics (default: 1,000 on CPU, 50,000 on a GPU; "
                                                        "cached beside the data).")] = None,
    stacked_modes: Annotated[Optional[bool], typer.Option("--stacked-modes/--no-stacked-modes", help="Stacked MNIST's "
                                                          "modes (of 1,000) and KL, PacGAN's way (default: on for "
                                                          "stacked-mnist runs).")] = None,
    mode_samples: Annotated[Optional[int], typer.Option(help="Samples the modes are counted on (default 26,000, "
                                                        "as PacGAN).")] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Evaluate the trained generator, not its EMA.")] = False,
) -> None:
    """Quality metrics (FD, KID, modes, precision/recall; per-class accuracy of conditional runs;
    FID/KID with --features inception; Stacked MNIST's modes and KL) -> RUN_DIR/quality.jsonl
    (--raw on a run with an EMA: quality_raw.jsonl)."""
    with user_errors():
        wanted = list(parse_epoch_list(epochs, "--epochs")) if epochs else None
        from gan_dist.environment import RunEnvironment
        from gan_dist.metrics.quality import evaluate_run, format_row, quality_file, use_cache_dir

        use_cache_dir(RunEnvironment.read().cache_dir)  # the environment, read here at the edge

        if features is not None:
            from gan_dist.config import FEATURES, check_choice

            check_choice("features", features, FEATURES)
        evaluate_run(run_dir, wanted, samples=samples, seed=seed, features=features, raw=raw,
                     real_samples=real_samples, stacked_modes=stacked_modes, mode_samples=mode_samples,
                     log=lambda row: typer.echo(format_row(row)))
        typer.echo(f"wrote {Path(run_dir) / quality_file(run_dir, raw)}")


@app.command()
def runs(
    directory: Annotated[Path, typer.Argument(help="Folder of runs (train's --out).")] = Path("runs"),
) -> None:
    """A table of runs: status, epochs, last losses, last quality, world size."""
    with user_errors():
        from gan_dist.report.runs_table import print_runs

        print_runs(directory)


@app.command()
def presets() -> None:
    """The shipped recipes for `gan train --preset NAME`: one line each, with what they measured."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from gan_dist.presets import PRESETS, read_preset

    with user_errors():
        table = Table(box=box.SIMPLE_HEAD, title="gan train --preset NAME", title_justify="left")
        table.add_column("preset", no_wrap=True)  # NAME@VERSION, as config.json records it
        table.add_column("recipe", overflow="fold")
        table.add_column("measured", overflow="fold")
        for name in PRESETS:
            preset = read_preset(name)
            table.add_row(preset.tag, preset.description, preset.measured)
        Console(width=max(Console().width, 120)).print(table)  # one line each from about 190 columns


# --- data (gan_dist.datasets.commands) -------------------------------------------------------
data_app = typer.Typer(no_args_is_help=True, help="Prepare and inspect datasets without training.")
app.add_typer(data_app, name="data")
_DATASET = Annotated[str, typer.Option(help=OPTIONS["dataset"].help)]
_DATA_DIR = Annotated[str, typer.Option(help=OPTIONS["data_dir"].help)]
_SIZE = Annotated[Optional[int], typer.Option(help=OPTIONS["image_size"].help)]
_CHANNELS = Annotated[Optional[int], typer.Option(help=OPTIONS["channels"].help)]
_CACHE = Annotated[Optional[str], typer.Option(help=OPTIONS["cache_dir"].help)]


@data_app.command("prepare")
def data_prepare(
    dataset: _DATASET = OPTIONS["dataset"].default,
    data_dir: _DATA_DIR = OPTIONS["data_dir"].default,
    image_size: _SIZE = None,
    channels: _CHANNELS = None,
    cache_dir: _CACHE = None,
    strict: Annotated[bool, typer.Option("--strict", help=OPTIONS["strict"].help)] = False,
    preview: Annotated[Optional[Path], typer.Option(help="Preview grid PNG (default: CACHE/preview.png).")] = None,
) -> None:
    """Pack a dataset once (as `gan train` would), print what it holds, write a preview grid."""
    with user_errors():
        from gan_dist.datasets.commands import prepare

        prepare(dataset, data_dir, image_size=image_size, channels=channels, cache_dir=cache_dir, strict=strict,
                preview=preview, echo=typer.echo)


@data_app.command("info")
def data_info(
    dataset: _DATASET = OPTIONS["dataset"].default,
    data_dir: _DATA_DIR = OPTIONS["data_dir"].default,
    image_size: _SIZE = None,
    channels: _CHANNELS = None,
    cache_dir: _CACHE = None,
) -> None:
    """What the packed caches of a dataset hold (count, shape, classes, settings, integrity)."""
    with user_errors():
        from gan_dist.datasets.commands import info

        info(dataset, data_dir, image_size=image_size, channels=channels, cache_dir=cache_dir, echo=typer.echo)


# --- sweep (gan_dist.sweep.cli): `gan sweep NAME ...`, `gan sweep status NAME` --------------
from gan_dist.sweep.cli import make_sweep_app  # noqa: E402  (takes the builders defined above)

app.add_typer(make_sweep_app(_option_parameter, user_errors), name="sweep")


def main() -> None:
    """Entry point of the `gan` script: every GanError becomes one line and exit 2."""
    try:
        app()
    except GanError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)

