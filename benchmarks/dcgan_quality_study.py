"""The lean loop behind benchmarks/RESULTS.md's dcgan quality studies: one change at a time to the
unconditional 28 px dcgan on mnist-sample, scored with `gan eval`'s metrics at given steps.

Same networks (nets/dcgan.py), losses, EMA rule (training/ema.py) and metrics
(metrics/quality.py) as `gan train` / `gan eval`; its own data order and noise, one process,
no checkpoints. One JSON line per evaluation on stdout, e.g.

    python benchmarks/dcgan_quality_study.py --name resize --g-variant resize --lr 1e-3 --evals 1248,2496

`--info-codes 10` is InfoGAN's categorical code, as `gan train --latent-codes 10` has it but
with Q trained in the G step (on G's fakes) rather than the D step. It reproduces the rows of
the study tables of RESULTS.md but DiffAugment's (an earlier version had
translation augmentation; it only made things worse and was dropped). Two time scales:
`--lr 1e-4 --lr-d 4e-4`. A width-64 run of 1,248 steps takes about 4 minutes on the 2-core EPYC RESULTS.md names.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gan_dist.datasets import load_dataset
from gan_dist.datasets.base import to_unit_range
from gan_dist.metrics.quality import evaluate_generator, real_reference
from gan_dist.nets.dcgan import DCGANDiscriminator, DCGANGenerator, init_dcgan
from gan_dist.nets.layers import GroupSyncBatchNorm as BatchNorm
from gan_dist.training.ema import ema_beta, make_ema, update_ema
from gan_dist.training.losses import discriminator_loss, generator_loss


# --- generator variants: G (built at `width`) -> G changed in place ---------------------------
def g_stride1_at_7(G, w):
    """An extra 3x3 stride-1 conv + BN + ReLU at 7x7."""
    G.net = nn.Sequential(G.net[0], G.net[1], nn.Conv2d(2 * w, 2 * w, 3, 1, 1, bias=False), BatchNorm(2 * w),
                          nn.ReLU(), *G.net[2:])


def g_wide_7(G, w):
    """4w channels at 7x7, then a stride-1 transposed conv to 2w (7 -> 7 -> 14 -> 28)."""
    G.project = nn.Linear(G.latent_dim, 4 * w * 49, bias=False)
    G.c0 = 4 * w
    G.net = nn.Sequential(BatchNorm(4 * w), nn.ReLU(), nn.ConvTranspose2d(4 * w, 2 * w, 3, 1, 1, bias=False),
                          BatchNorm(2 * w), nn.ReLU(), *G.net[2:])


def g_resize(G, w):
    """Nearest-neighbour x2 upsampling + 3x3 conv in place of every 4x4 stride-2 transposed conv."""
    layers = list(G.net)
    for i, m in enumerate(layers):
        if isinstance(m, nn.ConvTranspose2d):
            layers[i] = nn.Sequential(nn.Upsample(scale_factor=2),
                                      nn.Conv2d(m.in_channels, m.out_channels, 3, 1, 1, bias=m.bias is not None))
    G.net = nn.Sequential(*layers)


G_VARIANTS = {"paper": None, "stride1-at-7": g_stride1_at_7, "wide-7": g_wide_7, "resize": g_resize}


# --- discriminator variants: D -> number of BatchNorm groups its forward takes ---------------
def d_paper(D):
    return 2  # real and fake normalised apart, as gan train does


def d_no_bn(D):
    for i, m in enumerate(D.features):
        if isinstance(m, BatchNorm):
            D.features[i] = nn.Identity()
    return 1


def d_spectral_norm(D):
    """SNGAN: spectral norm on every weight, no BatchNorm."""
    d_no_bn(D)
    for m in list(D.modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(m)
    return 1


def d_dropout(D):
    """Dropout(0.3) after every LeakyReLU (TensorFlow's MNIST DCGAN tutorial)."""
    layers = []
    for m in D.features:
        layers.append(m)
        if isinstance(m, nn.LeakyReLU):
            layers.append(nn.Dropout(0.3))
    D.features = nn.Sequential(*layers)
    return 2


D_VARIANTS = {"paper": d_paper, "no-bn": d_no_bn, "spectral-norm": d_spectral_norm, "dropout": d_dropout}


def d_loss(real, fake, kind: str, real_target: float):
    """gan train's loss, or the study's two alternatives (hinge; one-sided label smoothing)."""
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if real_target < 1:
        return F.binary_cross_entropy_with_logits(real, torch.full_like(real, real_target)) + F.softplus(fake).mean()
    return discriminator_loss(real, fake)


def g_loss(fake, kind: str):
    return -fake.mean() if kind == "hinge" else generator_loss(fake, "nonsaturating")


def d_logits_and_features(D, x, groups):
    """D's logits and phi(x), its flattened last feature map (for InfoGAN's Q head)."""
    for layer in D.features:
        x = layer(x, groups) if isinstance(layer, BatchNorm) else layer(x)
    return D.head(x, None), x


def make_q_head(D, codes: int) -> nn.Module:
    """InfoGAN's Q (Chen et al. 2016): on D's features, logits of the categorical code."""
    return nn.Sequential(nn.Linear(D.head.psi.in_features, 128), nn.LeakyReLU(0.2), nn.Linear(128, codes))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", default="run")
    p.add_argument("--steps", type=int, default=1248)
    p.add_argument("--evals", default="1248", help="comma-separated steps to score the EMA and trained G at")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--d-width", type=int, default=0, help="D's base width (default: --width)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--lr-d", type=float, default=0, help="D's learning rate (default: --lr)")
    p.add_argument("--beta1", type=float, default=0.5)
    p.add_argument("--loss", choices=("nonsaturating", "hinge"), default="nonsaturating")
    p.add_argument("--real-target", type=float, default=1.0, help="< 1: one-sided label smoothing")
    p.add_argument("--g-variant", choices=tuple(G_VARIANTS), default="paper")
    p.add_argument("--d-variant", choices=tuple(D_VARIANTS), default="paper")
    p.add_argument("--ema-kimg", type=float, default=10.0)
    p.add_argument("--info-codes", type=int, default=0,
                   help="> 0: InfoGAN, a categorical latent code of this many values (no labels used)")
    p.add_argument("--info-weight", type=float, default=1.0, help="InfoGAN's lambda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    images = torch.from_numpy(np.asarray(load_dataset("mnist-sample", "data").images))
    reference = real_reference("mnist-sample", "data")
    # InfoGAN's code enters G as the conditional G's label does (a learned embedding concatenated to z)
    G = DCGANGenerator(width=a.width, num_classes=a.info_codes)
    D = DCGANDiscriminator(width=a.d_width or a.width)
    if G_VARIANTS[a.g_variant]:
        G_VARIANTS[a.g_variant](G, a.width)
    init_dcgan(G)  # again for every variant, as the study's runs did (it draws from the seeded RNG)
    if G.embed is not None:
        nn.init.normal_(G.embed.weight, 0.0, 1.0)  # as DCGANGenerator does: the code as loud as z
    groups = D_VARIANTS[a.d_variant](D)
    ema = make_ema(G)
    Q = make_q_head(D, a.info_codes) if a.info_codes else nn.Identity()
    opt_g = torch.optim.Adam([*G.parameters(), *Q.parameters()], a.lr, betas=(a.beta1, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), a.lr_d or a.lr, betas=(a.beta1, 0.999))
    evals = {int(s) for s in a.evals.split(",")}
    B, seen, start = a.batch, 0, time.time()
    order = torch.Generator().manual_seed(a.seed)
    perm, pos = torch.randperm(len(images), generator=order), 0
    for step in range(1, a.steps + 1):
        if pos + B > len(images):
            perm, pos = torch.randperm(len(images), generator=order), 0
        real = to_unit_range(images[perm[pos:pos + B]])
        pos += B
        code = torch.randint(a.info_codes, (B,)) if a.info_codes else None
        with torch.no_grad():
            fake = G(torch.randn(B, G.latent_dim), code)
        logits = D(torch.cat([real, fake]), None, groups=groups)
        loss = d_loss(logits[:B], logits[B:], a.loss, a.real_target)
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
        code = torch.randint(a.info_codes, (B,)) if a.info_codes else None
        logits, phi = d_logits_and_features(D, G(torch.randn(B, G.latent_dim), code), 1)  # Algorithm 1's fresh z
        loss = g_loss(logits, a.loss)
        if a.info_codes:  # the mutual-information bound: Q recovers the code from G's image
            loss = loss + a.info_weight * F.cross_entropy(Q(phi), code)
        opt_g.zero_grad()
        loss.backward(inputs=[*G.parameters(), *Q.parameters()])
        opt_g.step()
        update_ema(ema, G, ema_beta(B, seen, a.ema_kimg))
        seen += B
        if step in evals:
            row = {"name": a.name, "step": step, "minutes": round((time.time() - start) / 60, 1)}
            for tag, net in (("ema", ema), ("trained", G)):
                scores = evaluate_generator(net, real=reference)
                row[tag] = {k: scores[k] for k in ("fd", "modes", "confident", "precision", "recall")}
            G.train()
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
