"""The `gan` command line: options in, one function call out.

Commands are thin wrappers: they turn options into plain arguments and call a function
in the module that owns the work. Heavy imports (torch) happen inside the commands, so
`gan --help` answers quickly.
"""

from __future__ import annotations

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
    compile: Annotated[Optional[bool], typer.Option("--compile", help="torch.compile the steps.")] = None,
    sample_epochs: Annotated[Optional[str], typer.Option(help="Epochs whose sample grid is saved.")] = None,
    eval_epochs: Annotated[Optional[str], typer.Option(help="Epochs evaluated (quality.jsonl).")] = None,
    keep_checkpoints: Annotated[Optional[int], typer.Option(help="Newest checkpoints kept.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Parent directory of runs.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Run name (directory under --out).")] = None,
    resume: Annotated[Optional[str], typer.Option(help="auto | PATH of a run or checkpoint.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved config; train nothing.")] = False,
) -> None:
    """Train the GAN; the run directory is OUT/NAME."""
    from gan_dist.config import resolve_config

    given = {k: v for k, v in ctx.params.items() if v is not None and k not in ("config", "dry_run")}
    cfg = resolve_config(config_file=config, overrides=given)
    if dry_run:
        import json

        typer.echo(json.dumps(cfg.to_dict(), indent=2))
        return
    from gan_dist.launch import launch_training

    code = launch_training(cfg, explicit=set(given) | _toml_keys(config))
    raise typer.Exit(code)


def _toml_keys(config: Optional[Path]) -> set[str]:
    from gan_dist.config import read_toml

    return set(read_toml(config)) if config else set()


# --- other commands are registered below by their modules' owners ------------------------


def main() -> None:
    """Entry point of the `gan` script: every GanError becomes one line and exit 2."""
    try:
        app()
    except GanError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
