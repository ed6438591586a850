"""The networks and their optimisers as one bundle, built the same on every process."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gan_dist.config import TrainConfig
from gan_dist.errors import GanError
from gan_dist.nets import NetSpec, build_models
from gan_dist.nets.layers import set_sync_batchnorm
from gan_dist.training.ema import make_ema


@dataclass
class Models:
    """G and D as prepared by Accelerate (DDP-wrapped when distributed), their plain modules,
    their optimisers and the spec that built them. G and D are prepared separately: one DDP
    wrapper holding both breaks the reducer."""

    G: torch.nn.Module
    D: torch.nn.Module
    G_plain: torch.nn.Module
    D_plain: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    spec: NetSpec
    ema: torch.nn.Module | None = None  # the EMA of G (training/ema.py), when --ema-kimg > 0

    @property
    def G_shown(self) -> torch.nn.Module:
        """The generator that draws grids and is saved as generator.safetensors: the EMA if any."""
        return self.ema if self.ema is not None else self.G_plain


def net_spec(cfg: TrainConfig, data) -> NetSpec:
    """What to build for this config and the placed training set."""
    return NetSpec(arch=cfg.arch, latent_dim=cfg.latent_dim, image_shape=data.shape, d_dropout=cfg.d_dropout,
                   fast_dropout=cfg.fast_dropout, num_classes=data_classes(data) if cfg.conditional else 0,
                   width=cfg.width, latent_codes=cfg.latent_codes, pack=cfg.pack, blocks=cfg.blocks)


def data_classes(data) -> int:
    """Number of classes of the placed training set, for --conditional; one line when it has
    no labels (an unlabelled folder, or a folder with a single class)."""
    if data.labels is None or len(data.labels) == 0:
        raise GanError(f"--conditional needs labelled data, and {data.info['name']} has no labels: "
                       "drop --conditional or use a labelled dataset (folder:PATH with class subfolders)")
    names = data.info.get("classes")
    return len(names) if names else int(data.labels.max()) + 1


def build_training_models(cfg: TrainConfig, spec: NetSpec, accelerator) -> Models:
    torch.manual_seed(cfg.seed)  # same initial weights on every process
    G, D = build_models(spec)
    ema = make_ema(G).to(accelerator.device) if cfg.ema_kimg else None  # before compile and sync BN
    if cfg.sync_bn and accelerator.num_processes > 1:
        # Our own synchronised BatchNorm on every device: torch.nn.SyncBatchNorm refuses CPU
        # tensors and cannot normalise D's real and fake halves apart (nets/layers.py).
        set_sync_batchnorm(G)
        set_sync_batchnorm(D)
    if cfg.channels_last:  # 4-D weights NHWC before the optimisers (the EMA stays NCHW: only copied into)
        G.to(memory_format=torch.channels_last)
        D.to(memory_format=torch.channels_last)
    fused = {"fused": True} if accelerator.device.type in ("cuda", "cpu") else {}
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **fused)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **fused)
    if cfg.compile:
        # Module.compile() compiles __call__ in place: state_dict keys stay the same, so
        # checkpoints move freely between compiled and eager runs.
        G.compile()
        D.compile()
    G, D, opt_g, opt_d = accelerator.prepare(G, D, opt_g, opt_d)
    return Models(G, D, accelerator.unwrap_model(G), accelerator.unwrap_model(D), opt_g, opt_d, spec, ema)


def apply_optimiser_settings(cfg: TrainConfig, models: Models) -> None:
    """load_state restores each optimiser's lr and betas as saved: set the run's own (a resume
    with --allow-changes may have changed them)."""
    for opt in (models.opt_g, models.opt_d):
        for group in opt.param_groups:
            group["lr"], group["betas"] = cfg.lr, (cfg.beta1, cfg.beta2)
