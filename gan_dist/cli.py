"""The `gan` command line: options in, one function call out.

Commands are thin wrappers: they turn options into plain arguments and call a function
in the module that owns the work. Heavy imports (torch) happen inside the commands, so
`gan --help` answers quickly.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from gan_dist.errors import GanError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Distributed GAN training with Accelerate, and the coursework report.",
)


@app.callback()
def _root() -> None:
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
@app.command()
def train(
    ctx: typer.Context,
    config: Annotated[Optional[Path], typer.Option(help="TOML file of these options; flags win.")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="mnist | mnist-sample")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Where datasets live / download to.")] = None,
    arch: Annotated[Optional[str], typer.Option(help="Network architecture: mlp.")] = None,
    loss: Annotated[Optional[str], typer.Option(help="nonsaturating | minimax")] = None,
    k_disc: Annotated[Optional[int], typer.Option(help="Discriminator steps per generator step.")] = None,
    d_dropout: Annotated[Optional[float], typer.Option(help="Discriminator dropout.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs to train.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="GLOBAL batch, split over processes.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Adam learning rate.")] = None,
    beta1: Annotated[Optional[float], typer.Option(help="Adam beta1.")] = None,
    beta2: Annotated[Optional[float], typer.Option(help="Adam beta2.")] = None,
    latent_dim: Annotated[Optional[int], typer.Option(help="Size of the noise vector z.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of data order, noise and weights.")] = None,
    gpus: Annotated[Optional[int], typer.Option(help="Processes on this machine, one per GPU.")] = None,
    cpu: Annotated[Optional[bool], typer.Option("--cpu", help="Train on the CPU.")] = None,
    processes: Annotated[Optional[int], typer.Option(help="CPU processes per node (gloo).")] = None,
    nodes: Annotated[Optional[int], typer.Option(help="Number of machines.")] = None,
    node_rank: Annotated[Optional[int], typer.Option(help="This machine's rank, 0..nodes-1.")] = None,
    master_addr: Annotated[Optional[str], typer.Option(help="Rendezvous host (node 0).")] = None,
    master_port: Annotated[Optional[int], typer.Option(help="Rendezvous port.")] = None,
    precision: Annotated[Optional[str], typer.Option(help="no | bf16 | fp16")] = None,
    compile: Annotated[Optional[bool], typer.Option("--compile", help="torch.compile G and D.")] = None,
    sample_epochs: Annotated[Optional[str], typer.Option(help="Epochs whose sample grid is saved.")] = None,
    eval_epochs: Annotated[Optional[str], typer.Option(help="Epochs evaluated (quality.jsonl).")] = None,
    keep_checkpoints: Annotated[Optional[int], typer.Option(help="Newest checkpoints kept.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Parent directory of runs.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Run name (directory under --out).")] = None,
    resume: Annotated[Optional[str], typer.Option(help="auto | PATH of a run or checkpoint.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved config; train nothing.")] = False,
) -> None:
    """Train the GAN; the run directory is OUT/NAME."""
    import os

    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")  # c10d's C++ logs would break one-line errors
    from gan_dist.config import resolve_config

    given = {k: v for k, v in ctx.params.items() if v is not None and k not in ("config", "dry_run")}
    with user_errors():
        cfg = resolve_config(config_file=config, overrides=given)
        if dry_run:
            import json

            typer.echo(json.dumps(cfg.to_dict(), indent=2))
            return
        from gan_dist.training.launch import launch_training

        try:
            code = launch_training(cfg, explicit=set(given) | _toml_keys(config))
        except KeyboardInterrupt:
            fail(f"interrupted: the newest complete checkpoint is kept; continue with --resume auto "
                 f"--name {cfg.name}", 130)
    if code:
        raise typer.Exit(code)


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
    run_dirs: Annotated[Optional[list[Path]], typer.Argument(help="Two or more run directories.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="PDF to write.")] = Path("compare.pdf"),
    html: Annotated[Optional[Path], typer.Option(help="Also write the HTML to this file.")] = None,
    title: Annotated[Optional[str], typer.Option(help="Document title.")] = None,
    template_dir: Annotated[Optional[Path], typer.Option(help="Directory of templates overriding the shipped ones.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace existing output files.")] = False,
) -> None:
    """Compare runs in one PDF: curves overlaid, settings that differ, scaling, final grids."""
    from gan_dist.report.compare import render_compare

    with user_errors():
        path = render_compare(run_dirs or [], output, html=html, title=title, template_dir=template_dir, force=force)
    typer.echo(f"wrote {path}")


# --- sample / eval / runs (gan_dist.sampling, gan_dist.metrics.quality, gan_dist.report.runs_table) --------
def _parse_epochs(text: Optional[str]) -> Optional[list[int]]:
    if not text:
        return None
    try:
        epochs = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        fail(f"--epochs {text!r} is not a list of epochs: write e.g. 10,50,100")
    if any(e < 0 for e in epochs):
        fail(f"--epochs {text!r} has a negative epoch: write e.g. 10,50,100")
    return epochs


@app.command()
def sample(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output file: .png grid or .npz raw uint8 (N, C, H, W).")],
    n: Annotated[int, typer.Option("-n", help="Number of images.")] = 64,
    epoch: Annotated[Optional[int], typer.Option(help="Use the generator kept at this epoch (default: final).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the noise.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT if it exists.")] = False,
) -> None:
    """Generate images from a run's trained generator."""
    with user_errors():
        from gan_dist.sampling import sample_run

        path = sample_run(run_dir, n=n, out=out, epoch=epoch, seed=seed, force=force)
    typer.echo(f"wrote {n} images to {path}")


@app.command("eval")
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    epochs: Annotated[Optional[str], typer.Option(help="Epochs to evaluate, e.g. 10,50,100 (default: all kept).")] = None,
    samples: Annotated[int, typer.Option(help="Generated images per epoch.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the noise (and of the real subset).")] = 0,
) -> None:
    """Quality metrics (FD, KID, modes, precision/recall) -> RUN_DIR/quality.jsonl."""
    wanted = _parse_epochs(epochs)
    with user_errors():
        from gan_dist.metrics.quality import evaluate_run, format_row

        evaluate_run(run_dir, wanted, samples=samples, seed=seed, log=lambda row: typer.echo(format_row(row)))
    typer.echo(f"wrote {Path(run_dir) / 'quality.jsonl'}")


@app.command()
def runs(
    directory: Annotated[Path, typer.Argument(help="Folder of runs (train's --out).")] = Path("runs"),
) -> None:
    """A table of runs: status, epochs, last losses, last quality, world size."""
    with user_errors():
        from gan_dist.report.runs_table import print_runs

        print_runs(directory)


def main() -> None:
    """Entry point of the `gan` script: every GanError becomes one line and exit 2."""
    try:
        app()
    except GanError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)

