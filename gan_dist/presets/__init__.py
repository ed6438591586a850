"""Presets: named, versioned training recipes shipped with the package, one TOML file each,
behind one name -> file table (PRESETS) that validation, `--help`, errors and `gan presets` read.

A preset file holds a [preset] table (name, version, description, measured: the figures it was
measured at, or "not measured yet") and a [train] table of `gan train` options, read by the
same code as a `--config` file. Priority: defaults < preset < --config file < flags. A run
records the preset as NAME@VERSION; `--preset NAME@VERSION` insists on that version.

A recipe says how to train, not where: options of the run's place and process layout are
refused in a preset (PLACEMENT_KEYS). Change a shipped recipe only with a new version.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from gan_dist.errors import GanError

# The one table of presets: name -> its file in this package.
PRESETS: dict[str, str] = {
    "coursework": "coursework.toml",
    "dcgan-mnist": "dcgan-mnist.toml",
    "resnet-mnist": "resnet-mnist.toml",
    "stacked-mnist": "stacked-mnist.toml",
}

# Where and how a run lives: the user's to choose, never a recipe's.
PLACEMENT_KEYS = frozenset({"out", "name", "resume", "allow_changes", "gpus", "cpu", "processes", "nodes",
                            "node_rank", "master_addr", "master_port", "data_dir", "cache_dir", "preset"})


@dataclass(frozen=True)
class Preset:
    name: str
    version: int
    description: str
    measured: str
    options: dict[str, Any]

    @property
    def tag(self) -> str:
        """How a run records it: NAME@VERSION."""
        return f"{self.name}@{self.version}"


def load_preset(spec: str) -> Preset:
    """The preset named `spec` ("NAME" or "NAME@VERSION"), its options type-checked; one line
    for an unknown name (with a suggestion) or a version this package does not ship."""
    from gan_dist.config import check_choice

    name, _, wanted = str(spec).partition("@")
    check_choice("preset", name, tuple(PRESETS))
    preset = read_preset(name)
    if wanted and wanted != str(preset.version):
        raise GanError(f"--preset {spec}: this gan_dist ships version {preset.version} of {name}, not {wanted}: "
                       f"use --preset {preset.tag} (or {name}) or the gan_dist that shipped version {wanted}")
    return preset


def read_preset(name: str) -> Preset:
    """The shipped preset `name` (a key of PRESETS)."""
    text = resources.files(__name__).joinpath(PRESETS[name]).read_text(encoding="utf-8")
    return parse_preset(name, text, f"preset file {PRESETS[name]}")


def parse_preset(name: str, text: str, where: str) -> Preset:
    """A preset from its TOML text: the [preset] table checked, the [train] options read as a
    --config file's are, and no option of where or how the run lives."""
    from gan_dist.config import parse_toml, train_options

    data = parse_toml(text, where)
    meta = data.get("preset")
    if not isinstance(meta, dict) or set(meta) != {"name", "version", "description", "measured"}:
        raise GanError(f"{where} needs a [preset] table of name, version, description and measured")
    if meta["name"] != name or not isinstance(meta["version"], int) or isinstance(meta["version"], bool):
        raise GanError(f"{where}: [preset] name must be {name!r} and version a whole number")
    options = train_options({"train": data.get("train", {})}, where)
    placed = sorted(PLACEMENT_KEYS & set(options))
    if placed:
        raise GanError(f"{where} sets {', '.join(placed)}: a preset says how to train, not where or on what")
    return Preset(name, meta["version"], str(meta["description"]), str(meta["measured"]), options)
