"""The training configuration: one frozen dataclass, validated once, saved with every run.

Sources, lowest priority first: defaults, a TOML file (`--config`), command-line flags.
Everything that reaches training has passed `TrainConfig.validate()`.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import tomllib

from gan_dist.errors import GanError

DATASETS = ("mnist", "mnist-sample")
ARCHS = ("mlp",)
LOSSES = ("nonsaturating", "minimax")
PRECISIONS = ("no", "bf16", "fp16")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class TrainConfig:
    # what is learned
    dataset: str = "mnist"
    data_dir: str = "data"
    arch: str = "mlp"
    loss: str = "nonsaturating"
    k_disc: int = 1
    d_dropout: float = 0.3
    # how
    epochs: int = 100
    batch_size: int = 100  # GLOBAL batch, split evenly over processes
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    latent_dim: int = 100
    seed: int = 0
    precision: str = "no"
    compile: bool = False
    # where
    gpus: int | None = None  # None: every visible GPU, else CPU
    cpu: bool = False
    processes: int = 1  # CPU processes per node
    nodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29517
    # what is written
    sample_epochs: tuple[int, ...] = (10, 20, 50, 100)
    eval_epochs: tuple[int, ...] = ()
    keep_checkpoints: int = 2
    out: str = "runs"
    name: str = ""
    resume: str | None = None  # "auto" or a path

    # ---- conversions ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["sample_epochs"] = list(self.sample_epochs)
        data["eval_epochs"] = list(self.eval_epochs)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**_coerce_all({k: v for k, v in data.items() if k in known}, "config.json"))

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.name

    def saved_epochs(self) -> tuple[int, ...]:
        """Epochs whose sample grid (and generator weights) are kept; the last always is."""
        return tuple(sorted({e for e in self.sample_epochs if 1 <= e <= self.epochs} | {self.epochs}))

    # ---- validation ----------------------------------------------------------------------
    def validate(self) -> "TrainConfig":
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise GanError(message)

        need(self.dataset in DATASETS, f"unknown dataset {self.dataset!r}: use one of {', '.join(DATASETS)}")
        need(self.arch in ARCHS, f"unknown arch {self.arch!r}: use one of {', '.join(ARCHS)}")
        need(self.loss in LOSSES, f"unknown loss {self.loss!r}: use one of {', '.join(LOSSES)}")
        need(self.precision in PRECISIONS, f"unknown precision {self.precision!r}: use one of {', '.join(PRECISIONS)}")
        for key in ("epochs", "batch_size", "k_disc", "latent_dim", "processes", "nodes", "keep_checkpoints"):
            need(getattr(self, key) >= 1, f"--{key.replace('_', '-')} must be at least 1, got {getattr(self, key)}")
        need(self.lr > 0, f"--lr must be positive, got {self.lr}")
        need(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "--beta1 and --beta2 must lie in [0, 1)")
        need(0 <= self.d_dropout < 1, f"--d-dropout must lie in [0, 1), got {self.d_dropout}")
        need(self.gpus is None or self.gpus >= 0, f"--gpus must be 0 or more, got {self.gpus}")
        need(0 <= self.node_rank < self.nodes, f"--node-rank must lie in 0..{self.nodes - 1}, got {self.node_rank}")
        need(1 <= self.master_port <= 65535, f"--master-port must lie in 1..65535, got {self.master_port}")
        need(self.nodes == 1 or bool(self.name), "multi-node runs need --name, so every node writes to the same run")
        for key in ("sample_epochs", "eval_epochs"):
            need(all(e >= 1 for e in getattr(self, key)), f"--{key.replace('_', '-')} must list epochs >= 1")
        need(bool(NAME_PATTERN.match(self.name)) and self.name not in (".", ".."),
             f"--name {self.name!r} is not a plain directory name: use letters, digits, '.', '_' or '-' "
             "(no '/' or '..'; the run lives inside --out)")
        return self


# ---- building a config from a TOML file and flags ---------------------------------------
_FIELD_TYPES = {f.name: f.type for f in fields(TrainConfig)}


def _epoch_list(value: Any, key: str) -> tuple[int, ...]:
    if isinstance(value, str):
        parts = [p for p in value.replace(" ", "").split(",") if p]
        if not all(p.isdigit() for p in parts):
            raise GanError(f"{key} must be a comma-separated list of epochs such as 10,20,50,100, got {value!r}")
        return tuple(int(p) for p in parts)
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    raise GanError(f"{key} must be a list of epochs such as [10, 20, 50, 100], got {value!r}")


def _coerce(key: str, value: Any, source: str) -> Any:
    """Check one value's type; TOML and JSON give typed values, the CLI already parsed."""
    kind = _FIELD_TYPES[key]
    where = f"{key} in {source}"
    if key in ("sample_epochs", "eval_epochs"):
        return _epoch_list(value, where)
    if key == "gpus" and value is None:
        return None
    if key == "resume":
        return None if value is None else str(value)
    if "bool" in kind:
        if not isinstance(value, bool):
            raise GanError(f"{where} must be true or false, got {value!r}")
        return value
    if "int" in kind:
        if not isinstance(value, int) or isinstance(value, bool):
            raise GanError(f"{where} must be a whole number, got {value!r}")
        return value
    if "float" in kind:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise GanError(f"{where} must be a number, got {value!r}")
        return float(value)
    if isinstance(value, Path):
        return str(value)
    if not isinstance(value, str):
        raise GanError(f"{where} must be a string, got {value!r}")
    return value


def _coerce_all(data: dict[str, Any], source: str) -> dict[str, Any]:
    return {k: _coerce(k, v, source) for k, v in data.items()}


def read_toml(path: Path) -> dict[str, Any]:
    """Read a `--config` TOML file, refusing unknown keys with a suggestion."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise GanError(f"config file {path} does not exist: check the --config path") from None
    except (OSError, UnicodeDecodeError) as err:
        raise GanError(f"cannot read config file {path}: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise GanError(f"config file {path} is not valid TOML ({err}): fix the file") from None
    data = data.get("train", data)  # either flat keys or a [train] table
    normalised = {k.replace("-", "_"): v for k, v in data.items()}
    for key in normalised:
        if key not in _FIELD_TYPES or key in ("resume",):
            close = difflib.get_close_matches(key, list(_FIELD_TYPES), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise GanError(f"unknown key {key!r} in config file {path}{hint}: remove or correct it")
    return _coerce_all(normalised, str(path))


def default_name(dataset: str, arch: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{dataset}-{arch}"


def resolve_config(config_file: Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults < TOML file < flags, then validation. Fills in a default run name."""
    values: dict[str, Any] = {}
    if config_file is not None:
        values.update(read_toml(config_file))
    values.update(_coerce_all(dict(overrides or {}), "the command line"))
    if not values.get("name"):
        values["name"] = default_name(values.get("dataset", TrainConfig.dataset), values.get("arch", TrainConfig.arch))
    return TrainConfig(**values).validate()


def save_json(cfg_dict: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(cfg_dict, indent=2, sort_keys=False) + "\n")
