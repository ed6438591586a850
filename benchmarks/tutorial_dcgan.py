"""The DCGAN baseline: the PyTorch DCGAN tutorial's loop (pytorch.org/tutorials/beginner/dcgan_faces_tutorial),
on 28x28 digits. Faithful on purpose, fast on no account: a per-image Dataset (PIL -> ToTensor ->
Normalize((0.5,), (0.5,))) in a DataLoader(batch_size=128, shuffle=True); the tutorial's networks
scaled to 28 px (G: ConvTranspose2d 7x7 from z, then two 4x4 stride-2 stages 7 -> 14 -> 28 with
BatchNorm + ReLU and Tanh; D: the mirror with LeakyReLU(0.2), BatchNorm after the first stage and a
7x7 conv + Sigmoid to one output); weights N(0, 0.02); nn.BCELoss; Adam(2e-4, (0.5, 0.999));
D(real) and D(fake) as two forwards, and ``.item()`` after every step, as the tutorial does.
Widths ngf = ndf = 64, the same as `gan train --arch dcgan` (the same stage widths: 128, 64).

    python benchmarks/tutorial_dcgan.py --images 5000 --warmup 5 [--precision bf16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tutorial_loop import make_dataset

BATCH = 128
NZ = 100


class Generator(nn.Module):
    def __init__(self, ngf: int = 64):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(NZ, ngf * 2, 7, 1, 0, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, z):
        return self.main(z)


class Discriminator(nn.Module):
    def __init__(self, ndf: int = 64):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, 1, 7, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, x):
        return self.main(x).view(-1)


def weights_init(m):  # the tutorial's
    name = m.__class__.__name__
    if name.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif name.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


def run(*, images: int = 5000, warmup: int = 5, precision: str = "no", device: str = "cpu",
        batch_size: int = BATCH, seed: int = 0, data_dir: Path | None = None, **_ignored) -> dict:
    torch.manual_seed(seed)
    dev = torch.device(device)
    amp_dtype = {"no": None, "bf16": torch.bfloat16}[precision]
    with tempfile.TemporaryDirectory(prefix="tutorial_dcgan_") as tmp:  # torchvision reads the files at once
        dataset, data_desc = make_dataset(data_dir, Path(tmp))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)
    netG, netD = Generator().to(dev), Discriminator().to(dev)
    netG.apply(weights_init)
    netD.apply(weights_init)
    criterion = nn.BCELoss()
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def autocast():
        return torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None)

    steps_timed = max(1, images // batch_size)
    step, t0, d_losses, g_losses = 0, None, [], []
    while step < warmup + steps_timed:
        for data, _ in loader:
            if step == warmup:
                t0 = time.perf_counter()
                d_losses, g_losses = [], []
            real = data.to(dev)
            b = real.size(0)
            netD.zero_grad()
            with autocast():
                err_real = criterion(netD(real).float(), torch.full((b,), 1.0, device=dev))
            err_real.backward()
            noise = torch.randn(b, NZ, 1, 1, device=dev)
            with autocast():
                fake = netG(noise)
                err_fake = criterion(netD(fake.detach()).float(), torch.full((b,), 0.0, device=dev))
            err_fake.backward()
            optD.step()
            netG.zero_grad()
            with autocast():
                err_g = criterion(netD(fake).float(), torch.full((b,), 1.0, device=dev))
            err_g.backward()
            optG.step()
            d_losses.append((err_real + err_fake).item())
            g_losses.append(err_g.item())
            step += 1
            if step == warmup + steps_timed:
                break
    seconds = time.perf_counter() - t0
    timed = steps_timed * batch_size
    return {"loop": "tutorial-dcgan", "precision": precision, "device": device, "threads": torch.get_num_threads(),
            "data": f"{data_desc}, per-image DataLoader", "batch_size": batch_size,
            "warmup_steps": warmup, "images": timed, "seconds": round(seconds, 4),
            "images_per_second": round(timed / seconds, 1), "d_loss": round(float(np.mean(d_losses)), 4),
            "g_loss": round(float(np.mean(g_losses)), 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--precision", choices=["no", "bf16"], default="no")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(run(images=args.images, warmup=args.warmup, precision=args.precision), indent=2))


if __name__ == "__main__":
    main()
