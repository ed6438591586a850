"""What the documents say about a run: numbers formatted, facts derived from config.json with
fallbacks for old runs, the sample grids to show, the stop/resume timeline, setting labels.

Shared by `gan report` (render.py) and `gan compare` (compare.py). Plain data in and out;
no Jinja, no matplotlib, no torch.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gan_dist.config import OPTIONS, report_labels
from gan_dist.report.rundata import png_size
from gan_dist.training.augment import AUGMENTS

DEFAULT_EPOCHS = (10, 20, 50, 100)
MAX_FIGURES = 8  # more saved grids than this: show a spread of them, not pages of grids
LN2 = math.log(2)


# --- formatting -----------------------------------------------------------------------------
def fmt(value: Any, spec: str = "") -> str:
    """A number with `spec`, or the value as text; '—' when absent."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)) and spec:
        return format(value, spec)
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items()) or "—"
    return str(value)


def duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "—"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def clock(unix: Any) -> str:
    """UTC, so a report reads the same wherever it is rendered."""
    if not isinstance(unix, (int, float)):
        return "—"
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(unix))


def caption(row: dict, total_epochs: Any) -> str:
    """The coursework's caption, from this run's own figures."""
    return (f"Epoch {row['epoch']} of {fmt(total_epochs)} with {fmt(row.get('seconds'), '.2f')} s"
            f" — Generator loss: {fmt(row.get('g_loss'), '.4f')},"
            f" Discriminator loss: {fmt(row.get('d_loss'), '.4f')}")


def numbers(rows: Sequence[dict], key: str) -> list[float]:
    return [r[key] for r in rows if isinstance(r.get(key), (int, float))
            and not isinstance(r.get(key), bool) and math.isfinite(r[key])]


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


# --- the dataset ----------------------------------------------------------------------------
DATASET_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10",
                  "stacked-mnist": "Stacked MNIST (three digits as R, G, B; 1,000 modes)"}
DIGITS = ("mnist", "mnist-sample")


def dataset_facts(cfg: dict) -> dict[str, Any]:
    """Name, human title, size, shape and classes: from dataset_info when the run wrote it,
    else from the older keys (dataset, dataset_size, image_shape)."""
    info = cfg.get("dataset_info") if isinstance(cfg.get("dataset_info"), dict) else {}
    name = str(cfg.get("dataset") or info.get("name") or "mnist")
    size = info.get("size", cfg.get("dataset_size"))
    shape = info.get("image_shape") or cfg.get("image_shape")
    shape = [int(x) for x in shape] if isinstance(shape, list) and len(shape) == 3 else None
    classes = info.get("classes")
    classes = [str(c) for c in classes] if isinstance(classes, list) else None
    if classes is None and name in DIGITS:
        classes = [str(d) for d in range(10)]
    title = info.get("title")
    if not title:
        if name == "mnist-sample":
            title = f"MNIST ({size:,}-image sample)" if isinstance(size, int) else "MNIST (sample)"
        elif name.startswith("folder:"):
            title = f"image folder {name[len('folder:'):]}"
        else:
            title = DATASET_TITLES.get(name, name)
    channels = shape[0] if shape else cfg.get("channels")
    return {"name": name, "title": str(title), "size": size, "shape": shape,
            "channels": channels, "resolution": f"{shape[1]} × {shape[2]} px" if shape else None,
            "classes": classes, "digits": name in DIGITS}


def dataset_rows(data: dict) -> list[tuple[str, str]]:
    colour = {1: "grayscale", 3: "RGB"}.get(data["channels"])
    classes = data["classes"]
    if classes:
        shown = ", ".join(classes[:20]) + (f", … ({len(classes) - 20} more)" if len(classes) > 20 else "")
        class_text = f"{len(classes)}: {shown}"
    else:
        class_text = "none (unlabelled)"
    return [("Dataset", data["title"]), ("Name given", data["name"]),
            ("Training images", fmt(data["size"], ",")), ("Resolution", fmt(data["resolution"])),
            ("Channels", f"{fmt(data['channels'])} ({colour})" if colour else fmt(data["channels"])),
            ("Classes", class_text)]


# --- the networks ---------------------------------------------------------------------------
ARCH_TITLES = {"mlp": "MLP", "dcgan": "DCGAN", "resnet": "residual (R3GAN-style)"}
_REPR_NOISE = re.compile(r"\b(in_features|out_features|negative_slope|p|num_features)=|, bias=True|"
                         r", inplace=False|, affine=True|, track_running_stats=True|"
                         r"\(start_dim=1, end_dim=-1\)|, stride=\(1, 1\)|, eps=1e-05|, momentum=0.1")
# torch's conv reprs, shortened for a table: kernel_size=(3, 3) -> 3×3, stride=(2, 2) -> stride 2
_REPR_SHORT = [(re.compile(r"kernel_size=\((\d+), (\d+)\)"), lambda m: f"{m[1]}×{m[2]}"),
               (re.compile(r"\b(stride|padding|output_padding)=\((\d+), \2\)"),
                lambda m: f"{m[1].replace('_', ' ')} {m[2]}"),
               (re.compile(r"\bgroups=(\d+)"), lambda m: f"groups {m[1]}"),
               (re.compile(r"\bbias=False"), lambda m: "no bias"),
               (re.compile(r" -> "), lambda m: " → "), (re.compile(r"(?<=\d) x (?=\d)"), lambda m: " × "),
               (re.compile(r"(?<=\d)x(?=\d)"), lambda m: "×"),
               (re.compile(r"filter=\[([^\]]*)\]"), lambda m: "filter [" + re.sub(r"\.0\b", "", m[1]) + "]")]
# Blocks a layer table shows as one unit (nets/describe.py records each layer's enclosing block)
BLOCK_TITLES = {"ResidualBlock": "Residual block: its input is added to the output of the layers below"}


def layer_text(text: str) -> str:
    """A layer's repr as the tables show it: defaults dropped, conv geometry shortened."""
    text = _REPR_NOISE.sub("", str(text))
    for pattern, short in _REPR_SHORT:
        text = pattern.sub(short, text)
    return text


def network_facts(cfg: dict) -> dict[str, Any]:
    arch = str(cfg.get("arch") or "mlp")
    ema = cfg.get("ema_kimg")
    source = cfg.get("sample_source") or ("ema" if isinstance(ema, (int, float)) and ema > 0 else "raw")
    conditional = bool(cfg.get("conditional"))
    codes = int(cfg.get("latent_codes") or 0)
    phrase = f"{ARCH_TITLES.get(arch, arch)} networks"
    extras = ((["class-conditional"] if conditional else []) + ([f"InfoGAN code of {codes}"] if codes else [])
              + (["EMA generator"] if source == "ema" else []))
    return {"arch": arch, "title": ARCH_TITLES.get(arch, arch), "conditional": conditional,
            "latent_codes": codes, "code_loss_chance": math.log(codes) if codes else None,
            "ema_kimg": ema, "sample_source": source, "basis": _basis_size(cfg),
            "width": cfg.get("width"), "blocks": cfg.get("blocks"),
            "phrase": phrase + (f" ({', '.join(extras)})" if extras else "")}


def _basis_size(cfg: dict) -> str | None:
    """The side of the resnet generator's learned basis, read from its layer table ("7 × 7")."""
    arch = cfg.get("architecture") if isinstance(cfg.get("architecture"), dict) else {}
    for row in arch.get("generator") or []:
        if isinstance(row, dict) and str(row.get("layer", "")).startswith("GenerativeBasis"):
            dims = re.findall(r"\d+", str(row.get("output", "")))
            return f"{dims[-2]} × {dims[-1]}" if len(dims) >= 2 else None
    return None


def network_tables(cfg: dict) -> list[dict[str, Any]]:
    """One entry per network: its parameter count and either a layer table (rows written as
    {layer, output, parameters}, with a heading row where a block of BLOCK_TITLES starts) or,
    for old runs that wrote layer reprs, a chain of layers."""
    arch = cfg.get("architecture") if isinstance(cfg.get("architecture"), dict) else {}
    params = cfg.get("parameters") if isinstance(cfg.get("parameters"), dict) else {}
    nets = []
    for name in ("generator", "discriminator"):
        rows = arch.get(name) if isinstance(arch.get(name), list) else []
        table, block = [], None
        for r in rows:
            if not isinstance(r, dict):
                continue
            title = BLOCK_TITLES.get(str(r.get("block_type")))
            inside = title is not None and r.get("block") is not None
            if inside and r.get("block") != block:
                table.append({"heading": title, "inside": False})
            block = r.get("block") if inside else None
            table.append({"heading": None, "layer": layer_text(r.get("layer", "")), "output": fmt(r.get("output")),
                          "parameters": fmt(r.get("parameters"), ","), "inside": inside})
        chain = " → ".join(layer_text(r) for r in rows if not isinstance(r, dict))
        nets.append({"name": name.capitalize(), "parameters": params.get(name),
                     "table": table, "chain": chain})
    return nets


# --- the losses -------------------------------------------------------------------------------
@dataclass(frozen=True)
class LossFacts:
    """What a run's logged losses mean. `bce`: D's output is a probability, sigmoid(logit), and
    1/2 means D cannot tell; the others read logits. d_rest / g_rest: L_D and L_G where D
    cannot tell real from generated (hinge: with D = 0; None where unknown), their TeX for
    plot labels, and the plain text the comparison's tables show."""

    name: str
    bce: bool
    d_rest: float | None
    g_rest: float | None
    d_tex: str = ""
    g_tex: str = ""
    words: str = ""


LOSS_FACTS = {
    "nonsaturating": LossFacts("nonsaturating", True, 2 * LN2, LN2, r"2\ln 2", r"\ln 2", "1.386, 0.693"),
    "minimax": LossFacts("minimax", True, 2 * LN2, -LN2, r"2\ln 2", r"-\ln 2", "1.386, −0.693"),
    "hinge": LossFacts("hinge", False, 2.0, 0.0, "2", "0", "2, 0 with D ≡ 0"),
    "rpgan": LossFacts("rpgan", False, LN2, LN2, r"\ln 2", r"\ln 2", "0.693, 0.693"),
}


def loss_facts(cfg: dict) -> LossFacts:
    """The run's loss; a loss this version does not know: nothing claimed about its values."""
    name = str(cfg.get("loss") or "nonsaturating")
    return LOSS_FACTS.get(name) or LossFacts(name, False, None, None)


def loss_terms(cfg: dict) -> dict[str, str]:
    """What config.json says each logged loss holds (runs before loss_terms: {})."""
    terms = cfg.get("loss_terms")
    return {str(k): str(v) for k, v in terms.items()} if isinstance(terms, dict) else {}


def overlay_losses(losses: Sequence[str]) -> dict[str, Any]:
    """What overlaid curves of runs with these losses can show: the names in order, whether
    they are all one loss (`same`: its facts), all BCE (1/2 on D's outputs), all hinge."""
    names = list(dict.fromkeys(str(n or "nonsaturating") for n in losses))
    facts = [loss_facts({"loss": n}) for n in names]
    return {"names": names, "same": facts[0] if len(names) == 1 else None,
            "bce": all(f.bce for f in facts), "hinge": all(f.name == "hinge" for f in facts),
            "bce_names": [f.name for f in facts if f.bce], "other_names": [f.name for f in facts if not f.bce]}


# --- the modern recipe: penalties, packing, augmentation -----------------------------------------
def _last(rows: Sequence[dict], key: str) -> tuple[int, float] | None:
    """(epoch, value) of the last row that has a number under `key`."""
    for row in reversed(rows):
        if numbers([row], key):
            return row["epoch"], row[key]
    return None


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def recipe_facts(cfg: dict, rows: Sequence[dict]) -> dict[str, Any]:
    """R1/R2, PacGAN and DiffAugment as the run recorded them, with the last logged values;
    `used` is False for a run with none of them (the coursework's)."""
    r1, r2 = _number(cfg.get("r1")), _number(cfg.get("r2"))
    interval = int(_number(cfg.get("reg_interval")) or 1)
    pack = int(_number(cfg.get("pack")) or 1)
    ops = [op.strip() for op in str(cfg.get("augment") or "").split(",") if op.strip()]
    p_text = str(cfg.get("augment_p", "1.0"))
    auto = bool(ops) and p_text == "auto"
    try:
        p_fixed = None if auto else float(p_text)
    except ValueError:
        p_fixed = None
    ops_words = [f"{op} ({AUGMENTS[op].about.split(':')[0]})" if op in AUGMENTS else op for op in ops]
    return {"used": bool(r1 or r2 or pack > 1 or ops), "r1": r1, "r2": r2, "interval": interval,
            "penalised": bool(r1 or r2), "r1_last": _last(rows, "r1_penalty"), "r2_last": _last(rows, "r2_penalty"),
            "pack": pack, "ops": ops, "ops_words": ops_words, "auto": auto, "p_fixed": p_fixed,
            "p_last": _last(rows, "augment_p"), "ada_target": cfg.get("ada_target", 0.6),
            "ada_kimg": cfg.get("ada_kimg", 500.0),
            "relativistic": str(cfg.get("loss")) == "rpgan"}


# --- references: each only where the text cites it ----------------------------------------------
REFERENCES = {  # key: (authors and title, venue, year)
    "goodfellow": ("I. Goodfellow, J. Pouget-Abadie, M. Mirza, B. Xu, D. Warde-Farley, S. Ozair, A. Courville, "
                   "Y. Bengio. Generative Adversarial Nets.", "NeurIPS", "2014"),
    "radford": ("A. Radford, L. Metz, S. Chintala. Unsupervised Representation Learning with Deep Convolutional "
                "Generative Adversarial Networks.", "ICLR", "2016"),
    "miyato": ("T. Miyato, M. Koyama. cGANs with Projection Discriminator.", "ICLR", "2018"),
    "chen": ("X. Chen, Y. Duan, R. Houthooft, J. Schulman, I. Sutskever, P. Abbeel. InfoGAN: Interpretable "
             "Representation Learning by Information Maximizing Generative Adversarial Nets.", "NeurIPS", "2016"),
    "huang": ("Y. Huang, A. Gokaslan, V. Kuleshov, J. Tompkin. The GAN is dead; long live the GAN! A Modern GAN "
              "Baseline.", "NeurIPS", "2024"),
    "lim": ("J. H. Lim, J. C. Ye. Geometric GAN.", "arXiv:1705.02894", "2017"),
    "jolicoeur": ("A. Jolicoeur-Martineau. The relativistic discriminator: a key element missing from standard GAN.",
                  "arXiv:1807.00734", "2018 (ICLR 2019)"),
    "mescheder": ("L. Mescheder, A. Geiger, S. Nowozin. Which Training Methods for GANs do actually Converge?",
                  "ICML", "2018"),
    "karras2020": ("T. Karras, S. Laine, M. Aittala, J. Hellsten, J. Lehtinen, T. Aila. Analyzing and Improving "
                   "the Image Quality of StyleGAN.", "CVPR", "2020"),
    "lin": ("Z. Lin, A. Khetan, G. Fanti, S. Oh. PacGAN: The power of two samples in generative adversarial "
            "networks.", "NeurIPS", "2018"),
    "zhao": ("S. Zhao, Z. Liu, J. Lin, J.-Y. Zhu, S. Han. Differentiable Augmentation for Data-Efficient GAN "
             "Training.", "NeurIPS", "2020"),
    "karras_ada": ("T. Karras, M. Aittala, J. Hellsten, S. Laine, J. Lehtinen, T. Aila. Training Generative "
                   "Adversarial Networks with Limited Data.", "NeurIPS", "2020"),
}


def references(cfg: dict) -> list[tuple[str, str, str]]:
    """The works the report's text cites for this run, in the order it cites them."""
    nets, recipe, loss = network_facts(cfg), recipe_facts(cfg, []), loss_facts(cfg).name
    cited = {"goodfellow": True, "radford": nets["arch"] == "dcgan", "huang": nets["arch"] == "resnet" or loss == "rpgan",
             "miyato": nets["conditional"], "chen": bool(nets["latent_codes"]), "lim": loss == "hinge",
             "jolicoeur": loss == "rpgan", "mescheder": recipe["penalised"],
             "karras2020": recipe["penalised"] and recipe["interval"] > 1, "lin": recipe["pack"] > 1,
             "zhao": bool(recipe["ops"]), "karras_ada": recipe["auto"]}
    return [REFERENCES[key] for key, used in cited.items() if used]


# --- where it ran ---------------------------------------------------------------------------
def placement(cfg: dict, rows: Sequence[dict] = ()) -> dict[str, Any]:
    env = cfg.get("env") if isinstance(cfg.get("env"), dict) else {}
    world = cfg.get("world_size", rows[-1].get("world_size") if rows else None)
    nodes = env.get("num_nodes") or cfg.get("num_nodes") or 1
    per_node = world // nodes if isinstance(world, int) and isinstance(nodes, int) and nodes else None
    text = f"{world} ({per_node} per node × {nodes} nodes)" if per_node and nodes > 1 else fmt(world)
    device = env.get("device")
    name = env.get("device_name")
    return {"world_size": world, "nodes": nodes, "per_node": per_node, "text": text,
            "device": f"{device} ({name})" if device and name else fmt(device)}


# --- settings: labels and kinds come from the option declarations (config.OPTIONS) -------------
# Identity, places and launch knobs are not settings (where a run ran is reported from what
# ran: world size, nodes, device); nor are facts training derived and wrote to config.json.
NOT_SETTINGS = {
    "name", "out", "resume", "allow_changes", "data_dir", "dry_run", "master_addr", "master_port",
    "node_rank", "gpus", "cpu", "processes", "nodes", "world_size", "num_nodes", "per_process_batch",
    "steps_per_epoch", "dataset_size", "image_shape", "dataset_info", "architecture",
    "parameters", "grid", "sample_source", "env", "num_classes"}
# What a run that predates an option did, where that is known: an old run and a new one with
# the same behaviour then agree. (Not fast_dropout: old runs used the 15-bit lanes.)
DEFAULTS = {"arch": "mlp", "conditional": False, "latent_codes": 0, "ema_kimg": None, "sync_bn": False,
            "loss": "nonsaturating", "k_disc": 1, "precision": "no", "compile": False,
            "log_with": None, "checkpoint_minutes": None, "r1": 0.0, "r2": 0.0, "reg_interval": 1,
            "pack": 1, "augment": "", "preset": ""}
DERIVED_ROWS = [("Data directory", "data_dir", ""), ("Per-process batch", "per_process_batch", ""),
                ("Steps per epoch", "steps_per_epoch", ",")]


def setting_keys(configs: Sequence[dict]) -> list[str]:
    """The declared options in declaration order, then keys a newer version declared that
    these runs recorded (a setting unknown here is compared rather than hidden)."""
    declared = [key for key in OPTIONS if key not in NOT_SETTINGS]
    newer = sorted({k for cfg in configs for k, v in cfg.items() if k not in OPTIONS
                    and k not in NOT_SETTINGS and not isinstance(v, dict)})
    return declared + newer


def setting_label(key: str) -> tuple[str, str]:
    """(label, number format): the option's report label, else its name in words."""
    spec = OPTIONS.get(key)
    label = spec.label if spec and spec.label else key.replace("_", " ").capitalize()
    return label, "g" if spec and spec.kind is float else ""


def setting_kind(key: str) -> str:
    """'record' for what a resume may change (length, what is written, where), else 'train'
    (the optimisation itself; unknown keys count as that)."""
    spec = OPTIONS.get(key)
    return "record" if spec and spec.resumable else "train"


def setting_value(cfg: dict, key: str) -> Any:
    """The run's value of `key`; None where the option does not act in that run (off, as R1 at
    0, or not used by its network, as --width by the MLP): shown as '—'."""
    spec = OPTIONS.get(key)
    if spec is not None and not spec.shown_for({**DEFAULTS, **cfg}):
        return None
    value = cfg.get(key, DEFAULTS.get(key))
    return list(value) if isinstance(value, tuple) else value


def config_rows(cfg: dict) -> list[tuple[str, str]]:
    """The single report's configuration table: every labelled option the run recorded (the
    dataset has a table of its own), options of newer versions, then derived facts."""
    keys = [key for _, key in report_labels() if key in cfg and key not in ("dataset", "data_dir")
            and OPTIONS[key].shown_for(cfg)]
    keys += [key for key in setting_keys([cfg]) if key not in OPTIONS and key in cfg]
    rows = [(setting_label(key)[0], fmt(cfg[key], setting_label(key)[1])) for key in keys]
    return rows + [(label, fmt(cfg[key], spec)) for label, key, spec in DERIVED_ROWS if key in cfg]


# --- sample grids ---------------------------------------------------------------------------
def figure_epochs(requested: Sequence[int] | None, run: dict) -> tuple[list[int], list[str]]:
    """Which saved grids to show. Asked for (--epochs): those, or the nearest saved one with a
    note. Not asked for: the run's own saved epochs (a 6-epoch run saved at 2, 4, 6 shows all
    three), or a spread of them when there are more than MAX_FIGURES."""
    last_epoch = run["metrics"][-1]["epoch"]
    by_epoch = {row["epoch"] for row in run["metrics"]}
    saved = sorted(e for e in run["samples"] if e in by_epoch)
    if not saved:
        return [], ["No sample grid has been saved for an epoch with metrics yet (samples/ is empty)."]
    if requested:
        chosen, notes = [], []
        for want in requested:
            got = min(saved, key=lambda e: (abs(e - want), e))
            if got != want:
                why = "was not reached by this run" if want > last_epoch else "has no saved sample grid"
                notes.append(f"Epoch {want} {why}; showing epoch {got}, the nearest saved one.")
            chosen.append(got)
        return sorted(set(chosen)), notes
    if len(saved) <= MAX_FIGURES:
        return saved, []
    preferred = [e for e in DEFAULT_EPOCHS if e in saved] + [saved[-1]]
    if len(set(preferred)) >= 2:
        chosen = sorted(set(preferred))
    else:
        step = (len(saved) - 1) / (MAX_FIGURES - 1)
        chosen = sorted({saved[round(i * step)] for i in range(MAX_FIGURES)})
    note = (f"This run saved {len(saved)} sample grids; showing epochs "
            f"{', '.join(map(str, chosen))}. Choose others with --epochs.")
    return chosen, [note]


def sample_figure(run: dict, epoch: int, *, width_mm: float = 62.0) -> dict[str, Any]:
    """One grid as the templates show it: image, size, caption, and the class name of each
    row for conditional runs (rows of one class each), or its code value (c=k) for runs with
    latent codes."""
    cfg = run["config"]
    row = next(r for r in run["metrics"] if r["epoch"] == epoch)
    path = run["samples"][epoch]
    width_px, height_px = png_size(path) or (1, 1)
    width = width_mm * min(1.0, width_px / height_px)  # tall grids (one row per class) narrower
    height = width * height_px / width_px
    grid = cfg.get("grid") if isinstance(cfg.get("grid"), dict) else {}
    labels = grid.get("row_labels")
    rows = grid.get("rows")
    classes = dataset_facts(cfg)["classes"]
    if not isinstance(labels, list) and cfg.get("conditional") and classes and rows == len(classes):
        labels = classes
    codes = int(cfg.get("latent_codes") or 0)
    if not isinstance(labels, list) and codes and rows == codes:
        labels = [f"c={k}" for k in range(codes)]
    labels = [str(x) for x in labels] if isinstance(labels, list) and labels else None
    return {"epoch": epoch, "url": path.resolve().as_uri(), "caption": caption(row, cfg.get("epochs")),
            "width_mm": round(width, 2), "height_mm": round(height, 2), "labels": labels,
            "label_mm": round(height / len(labels), 3) if labels else None}


# --- stops and resumes ------------------------------------------------------------------------
EVENT_WORDS = {"start": "Started", "resume": "Resumed", "stop": "Stopped", "finish": "Finished",
               "diverged": "Diverged", "failed": "Failed"}


def _where(event: dict) -> str:
    epoch, step = event.get("epoch"), event.get("step")
    if not isinstance(epoch, int):
        return "—"
    if isinstance(step, int) and step > 0:
        return f"epoch {epoch + 1}, step {step}"
    return "at the beginning" if epoch == 0 else f"after epoch {epoch}"


def timeline(events: Sequence[dict]) -> dict[str, Any] | None:
    """The run's sessions from events.jsonl: rows for a table and a one-line summary.
    None for runs that predate events.jsonl."""
    if not events:
        return None
    t0 = events[0].get("time")
    rows = []
    for e in events:
        world, nodes = e.get("world_size"), e.get("num_nodes") or 1
        rows.append({"when": clock(e.get("time")),
                     "after": duration(e["time"] - t0) if isinstance(e.get("time"), (int, float))
                     and isinstance(t0, (int, float)) else "—",
                     "event": EVENT_WORDS.get(e["event"], e["event"]), "where": _where(e),
                     "placement": f"{world} × {nodes}" if isinstance(world, int) else "—",
                     "reason": fmt(e.get("reason"))})
    kinds = [e["event"] for e in events]
    sessions = sum(k in ("start", "resume") for k in kinds)
    sizes = sorted({(e.get("world_size"), e.get("num_nodes") or 1) for e in events
                    if isinstance(e.get("world_size"), int)})
    on = " and ".join(f"{w} process{'es' if w != 1 else ''} on {n} node{'s' if n != 1 else ''}"
                      for w, n in sizes)
    counts = [f"{kinds.count(k)} {word}{'s' if kinds.count(k) != 1 else ''}"
              for k, word in (("stop", "stop"), ("resume", "resume"), ("diverged", "divergence"),
                              ("failed", "failure")) if k in kinds]
    summary = (f"{sessions} session{'s' if sessions != 1 else ''}"
               + (f" ({', '.join(counts)})" if counts else "") + (f", on {on}" if on else "") + ".")
    resumes = [e for e in events if e["event"] == "resume" and isinstance(e.get("epoch"), int)]
    return {"rows": rows, "summary": summary, "simple": set(kinds) <= {"start", "finish"},
            "resume_epochs": [e["epoch"] + (0.5 if (e.get("step") or 0) > 0 else 0) for e in resumes]}


# --- quality ----------------------------------------------------------------------------------
QUALITY_COLUMNS = [  # key, heading, format
    ("fd", "FD", ".2f"), ("kid", "KID", ".4f"), ("kid_std", "KID std", ".4f"), ("modes", "Modes", ""),
    ("kl_uniform", "KL (uniform)", ".4f"), ("real_modes", "Modes (real)", ""), ("real_kl_uniform", "KL (real)", ".4f"),
    ("confident", "Confident", ".3f"), ("precision", "Precision", ".3f"), ("recall", "Recall", ".3f"),
    ("samples", "Samples", ",")]
DEFAULT_FEATURES = "digit-classifier"


def row_features(row: dict) -> str:
    return str(row.get("features") or DEFAULT_FEATURES)


def quality_table(rows: Sequence[dict]) -> dict[str, Any]:
    """Only the columns some row has; a Features column when rows were measured differently.
    Rows grouped by feature space (in order of first appearance), epochs ascending within."""
    columns = [c for c in QUALITY_COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    features = sorted({row_features(r) for r in rows})
    ordered = sorted(rows, key=lambda r: (features.index(row_features(r)), r["epoch"]))
    return {"columns": columns, "features": features,
            "rows": [{"epoch": r["epoch"], "features": row_features(r),
                      "cells": [fmt(r.get(k), spec) for k, _, spec in columns]} for r in ordered],
            "stacked": any(r.get("modes_of") for r in rows), "kid_std": any("kid_std" in r for r in rows),
            "protocols": protocols(rows)}


def rows_in(rows: Sequence[dict], feature: str) -> list[dict]:
    return [r for r in rows if row_features(r) == feature]


def protocols(rows: Sequence[dict]) -> list[str]:
    """The inception protocol(s) of these rows, in words: network and sha256, generated and real
    counts, reference split, resize (a row names them all; distinct ones are listed)."""
    out = []
    for r in rows_in(rows, "inception"):
        sha = str(r.get("network_sha256") or "")
        text = (f"{r.get('network') or 'FID Inception network'}, sha256 {sha[:12]}…: "
                f"{fmt(r.get('fakes', r.get('samples')), ',')} generated vs {fmt(r.get('reference_count'), ',')} real "
                f"{r.get('real') or 'training'} images ({r.get('reference_split') or 'train'} split), "
                f"{RESIZE_WORDS.get(str(r.get('resize')), fmt(r.get('resize')))}"
                + (f", KID over {r['kid_subsets']} subsets of {r['kid_subset_size']:,}" if r.get("kid_subsets") else ""))
        if text not in out:
            out.append(text)
    return out


RESIZE_WORDS = {"tf-bilinear-299": "gray replicated to RGB and resized to 299 × 299 the TF way (aligned bilinear)"}


def features_text(feature: str, data: dict) -> str:
    """Whose feature space the quality numbers live in, in words."""
    if feature == "inception":
        return ("the field's FID Inception network (TF-Inception 2015-12-05, pool3 features): FD is then the FID "
                "and KID the usual KID, comparable with published figures at the same sample counts")
    if feature == "digit-classifier":
        return "the feature space of a digit classifier trained by this project (FID's idea without Inception weights)"
    if feature == "stacked-digit-classifier":
        return ("the feature space of the project's digit classifier applied to each channel (FID's idea without "
                "Inception weights)")
    name = feature.removesuffix("-classifier")
    name = data["title"] if name == data["name"] else name
    return f"the feature space of a {name} classifier trained by this project (FID's idea without Inception weights)"


SPACE_WORDS = {"inception": "the Inception space", "digit-classifier": "the digit classifier's space",
               "stacked-digit-classifier": "the digit classifier's space, per channel"}


def quality_caption(feature: str, rows: Sequence[dict], *, runs: int = 1) -> str:
    """A quality figure's caption: what is plotted, in which space, and for inception rows the
    protocol (network, counts, reference, resize)."""
    fd = "FID" if feature == "inception" else "Fréchet distance"
    right = "precision and recall" + (", and the confident share" if runs == 1 and feature != "inception" else "")
    space = SPACE_WORDS.get(feature, f"the {feature.removesuffix('-classifier')} classifier's space")
    text = f"{fd} (left) and {right} (right) per evaluated epoch, in {space}"
    if runs > 1:
        text += ", for the runs measured there"
    listed = protocols(rows)
    return text + (". Protocol: " + "; ".join(listed) + "." if listed else ".")


STACKED_TEXT = ("Modes counts the distinct digit triples (of 1,000) among the generated samples, each channel "
                "classified by the digit classifier, and KL is KL(p ‖ uniform over 1,000) over the non-empty "
                "modes (natural log), PacGAN's protocol; the real columns give the same two figures for as many "
                "real stacked images, so the classifier's own error is visible.")
