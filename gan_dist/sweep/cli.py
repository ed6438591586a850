"""The `gan sweep` command group, registered by gan_dist.cli:

    gan sweep NAME --grid KEY=V1,V2 ... [--slurm | --local] [gan train options]
    gan sweep status NAME

`gan sweep NAME` is the group's default command (`run`, also callable by name): any first
word that is not a sub-command is a sweep name, so both forms work and a sweep may not be
named `run` or `status`. The train options are derived from config.OPTIONS as `gan train`'s
are (cli.py passes its builder in, so this module does not import cli.py).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from gan_dist.config import OPTIONS

HELP = ("A grid of `gan train` runs, as one Slurm job array (--slurm) or here (--local): "
        "`gan sweep NAME --grid lr=1e-4,2e-4 --grid seed=0,1 --slurm` plus any gan train option; "
        "`gan sweep NAME` again continues it; `gan sweep status NAME` shows the points.")


class SweepGroup(TyperGroup):
    """A group whose first argument, when not a sub-command, is the default command's NAME."""

    default_command = "run"

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def make_sweep_app(option_parameter: Callable[..., inspect.Parameter], user_errors) -> typer.Typer:
    """The group; `option_parameter(spec)` builds one `gan train` option (cli.py's builder),
    `user_errors()` turns a GanError into one line and exit 2."""
    app = typer.Typer(cls=SweepGroup, no_args_is_help=True, help=HELP)

    @app.command("status")
    def status(
        name: Annotated[str, typer.Argument(metavar="NAME", help="The sweep's name (its folder under --out).")],
        out: Annotated[Path, typer.Option(help="Folder the sweep lives in.")] = Path("runs"),
    ) -> None:
        """A table of the sweep's points: options that vary, state, epochs, losses, quality, Slurm task."""
        from rich.console import Console

        from gan_dist.sweep.commands import sweep_status

        console = Console()
        if not console.is_terminal:  # a log or a pipe: whole rows rather than 80 columns
            console = Console(width=160)
        with user_errors():
            sweep_status(name, out, console.print)

    def run(ctx: typer.Context, sweep_name: str, **params) -> None:
        """Start or continue sweep NAME: one `gan train` run per point of the grid, in OUT/NAME."""
        from gan_dist.sweep.commands import run_sweep

        own = {key: params.pop(key) for key in list(params) if key in SWEEP_OPTIONS}
        given = {k: v for k, v in params.items() if v is not None}
        with user_errors():
            code = run_sweep(sweep_name, grid_args=own["grid"] or [], config=own["config"], options=given,
                             use_slurm=own["slurm"], use_local=own["local"], max_parallel=own["max_parallel"],
                             retry_diverged=own["retry_diverged"], sbatch=own["sbatch"] or [],
                             script=own["script"], dry_run=own["dry_run"], echo=typer.echo)
        if code:
            raise typer.Exit(code)

    run.__signature__ = inspect.Signature([
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        inspect.Parameter("sweep_name", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          annotation=Annotated[str, typer.Argument(metavar="NAME", help="The sweep's name: "
                                                                    "its folder is OUT/NAME.")]),
        *SWEEP_PARAMETERS,
        *(option_parameter(spec) for spec in OPTIONS.values()),
    ])
    run.__annotations__ = {p.name: p.annotation for p in run.__signature__.parameters.values()}
    app.command("run", help="Start or continue sweep NAME (also: `gan sweep NAME ...`).")(run)
    return app


def _keyword(name: str, annotation, default=None) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


SWEEP_PARAMETERS = [
    _keyword("grid", Annotated[Optional[list[str]], typer.Option(
        "--grid", help="KEY=V1,V2,...: a gan train option and its values; repeat for more keys.")]),
    _keyword("config", Annotated[Optional[Path], typer.Option(
        help="TOML file: a \\[sweep] table of option = \\[values], and train options as gan train's "
             "--config takes them.")]),
    _keyword("slurm", Annotated[bool, typer.Option("--slurm", help="Submit one Slurm job array of "
                                                   "slurm/train.sh.")], False),
    _keyword("local", Annotated[bool, typer.Option("--local", help="Run the points on this machine "
                                                   "(the default for a new sweep).")], False),
    _keyword("max_parallel", Annotated[Optional[int], typer.Option(
        help="Points at once: the array's %P (default: no limit), or here (default 1; the cores are split).")]),
    _keyword("retry_diverged", Annotated[bool, typer.Option(
        "--retry-diverged", help="Also resume points that diverged, from their newest good checkpoint.")], False),
    _keyword("sbatch", Annotated[Optional[list[str]], typer.Option(
        help="An sbatch option for the array, e.g. --sbatch=--time=2:00:00 (repeatable).")]),
    _keyword("script", Annotated[Optional[Path], typer.Option(
        help="The batch script (default: slurm/train.sh of this checkout).")]),
    _keyword("dry_run", Annotated[bool, typer.Option("--dry-run", help="Check everything and say what would "
                                                     "run; write and submit nothing.")], False),
]
SWEEP_OPTIONS = {p.name for p in SWEEP_PARAMETERS}
