"""A sweep's grid: which `gan train` options vary, their typed values, the points of the
product and each point's run name.

Grid keys are option names (`batch-size` or `batch_size`), values typed as the option is
(`--grid lr=1e-4,2e-4` from the command line, `[sweep] lr = [1e-4, 2e-4]` from TOML). A point
is named after its values in grid order, Hydra's convention: `lr=2e-4,seed=1`. Floats are
written the short way whatever way they were typed, so the same value always gives the same
name (`0.0002`, `2e-4` and `2.0e-04` are all `2e-4`).
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from typing import Any

from gan_dist.config import NAME_PATTERN, OPTIONS, coerce_value, flag
from gan_dist.errors import GanError

# Options a sweep sets for every point itself, or that only make sense for one run.
SET_BY_SWEEP = {
    "name": "each point's run name is made from its grid values",
    "resume": "a sweep resumes its unfinished points itself: run `gan sweep NAME` again",
    "allow_changes": "a sweep's points keep the settings they were created with",
    "node_rank": "each node's rank comes from Slurm (slurm/train.sh)",
    "master_addr": "the rendezvous address comes from Slurm, or is this machine",
    "master_port": "each point picks its own port (from its Slurm job id, or a free one)",
}
# ... and, beyond those, what cannot vary from point to point.
NOT_IN_GRID = {
    "out": "the points live in OUT/NAME: give --out once",
    "nodes": "one job array has one shape: give --nodes once (and run a sweep per node count)",
    "sample_epochs": "it is a list of epochs, not a setting to compare",
    "eval_epochs": "it is a list of epochs, not a setting to compare",
}
MAX_NAME = 200  # a run name is a directory name (255 bytes at most on common file systems)


def option_key(text: str, what: str) -> str:
    """'batch-size' or 'batch_size' -> 'batch_size'; anything else is refused with the
    nearest option's name."""
    key = text.strip().replace("-", "_")
    if key in OPTIONS:
        return key
    names = [k.replace("_", "-") for k in OPTIONS]
    close = difflib.get_close_matches(key.replace("_", "-"), names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise GanError(f"{what} {text.strip()!r} is not a gan train option{hint}: see `gan train --help`")


def grid_key(text: str) -> str:
    key = option_key(text, "grid key")
    reason = SET_BY_SWEEP.get(key) or NOT_IN_GRID.get(key)
    if reason:
        raise GanError(f"{flag(key)} cannot be a grid key: {reason}")
    return key


def parse_value(key: str, text: str) -> Any:
    """One value typed on the command line, as the option's type."""
    spec = OPTIONS[key]
    text = text.strip()
    try:
        if spec.kind is bool:
            words = {"true": True, "yes": True, "on": True, "1": True,
                     "false": False, "no": False, "off": False, "0": False}
            value = words[text.lower()]
        elif spec.kind is int:
            value = int(text)
        elif spec.kind is float:
            value = float(text)
        else:
            value = text
    except (KeyError, ValueError):
        kind = {bool: "true or false", int: "a whole number", float: "a number"}[spec.kind]
        raise GanError(f"--grid {flag(key)[2:]}: {text!r} is not {kind}") from None
    return coerce_value(key, value, "--grid")


def parse_grid_args(items: list[str]) -> dict[str, list[Any]]:
    """`--grid lr=1e-4,2e-4 --grid seed=0,1` -> {"lr": [0.0001, 0.0002], "seed": [0, 1]}."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key_text, sep, values_text = item.partition("=")
        if not sep or not key_text.strip():
            raise GanError(f"--grid {item!r} must be KEY=V1,V2,... such as --grid lr=1e-4,2e-4")
        key = grid_key(key_text)
        if key in grid:
            raise GanError(f"--grid {flag(key)[2:]} is given twice: list all its values in one --grid")
        texts = values_text.split(",")
        if any(not t.strip() for t in texts):
            raise GanError(f"--grid {item!r} has an empty value: list values such as "
                           f"{flag(key)[2:]}=V1,V2 (no empty ones)")
        grid[key] = check_values(key, [parse_value(key, t) for t in texts], "--grid")
    return grid


def grid_from_toml(table: Any, source: str) -> dict[str, list[Any]]:
    """The [sweep] table of a TOML file: option = [values]."""
    if not isinstance(table, dict):
        raise GanError(f"[sweep] in {source} must be a table of option = [values]")
    grid: dict[str, list[Any]] = {}
    for key_text, values in table.items():
        key = grid_key(key_text)
        if not isinstance(values, list):
            raise GanError(f"[sweep] {key_text} in {source} must be a list of values, such as "
                           f"{key_text} = [{values!r}]")
        grid[key] = check_values(key, [coerce_value(key, v, f"[sweep] {key_text} in {source}")
                                       for v in values], f"[sweep] {key_text} in {source}")
    return grid


def check_values(key: str, values: list[Any], where: str) -> list[Any]:
    if not values:
        raise GanError(f"{where}: {flag(key)[2:]} has no values: give at least one")
    for i, value in enumerate(values):
        if value in values[:i]:
            raise GanError(f"{where}: {flag(key)[2:]} lists {value!r} twice: give each value once")
    return values


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination, the last key varying fastest (as nested loops in grid order)."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def point_name(values: dict[str, Any]) -> str:
    """{"lr": 0.0002, "seed": 1} -> 'lr=2e-4,seed=1': a valid run name (config.NAME_PATTERN)."""
    name = ",".join(f"{flag(key)[2:]}={value_text(value)}" for key, value in values.items())
    if len(name) > MAX_NAME:
        raise GanError(f"point name {name[:60]}... is longer than {MAX_NAME} characters: "
                       "use fewer grid keys or shorter values")
    assert NAME_PATTERN.match(name), name
    return name


def value_text(value: Any) -> str:
    """A value as it appears in a point's name."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return float_text(value)
    # Path separators and the name's own '=' and ',' become '-'.
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(value)) or "-"


def float_text(x: float) -> str:
    """Shortest exact text: 0.5, 3.0, 2e-4, 1.5e-5, 1e6 (scientific for small and large)."""
    if x == 0 or not math.isfinite(x) or 0.01 <= abs(x) < 1e6:
        return repr(x)
    for digits in range(17):
        text = f"{x:.{digits}e}"
        if float(text) == x:
            break
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent)}"
