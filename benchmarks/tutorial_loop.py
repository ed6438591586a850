"""The baseline: the coursework GAN trained the way the PyTorch tutorials and the coursework do.

Faithful on purpose, fast on no account: a torchvision ``MNIST`` dataset whose every image
goes through PIL -> ``ToTensor`` -> ``Normalize((0.5,), (0.5,))`` one at a time in a
``DataLoader(batch_size=100, shuffle=True)``; the coursework MLPs; ``nn.BCELoss``; Adam
(2e-4, betas (0.5, 0.999)); a D step on real + fake (fake detached, as the PyTorch DCGAN
tutorial does) and a non-saturating G step; ``loss.item()`` after every step.
``--precision bf16|fp16`` wraps the forward passes and losses in ``torch.autocast`` (fp16
with a GradScaler) -- the obvious way a user would try mixed precision in such a loop.

Data: the real MNIST test split (``--data-dir`` holding ``t10k-images-idx3-ubyte.gz`` etc.,
default ``../shared/data/mnist``) read through torchvision's own ``MNIST`` class via a temp
dir of unpacked files, or, when that is missing, the package's shipped sample
(``gan_dist/data/mnist_sample.npz``) through an equivalent per-image dataset.

    python benchmarks/tutorial_loop.py --images 20000 --warmup 20 [--precision bf16]
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets, transforms

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data" / "mnist"
SAMPLE_FILE = REPO / "gan_dist" / "data" / "mnist_sample.npz"
IDX_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

TRANSFORM = transforms.Compose(
    [transforms.ToTensor(), transforms.Normalize(mean=(0.5,), std=(0.5,))]
)


class _MNISTTest(datasets.MNIST):
    """torchvision's MNIST, asked only for the test files (it otherwise insists on all four)."""

    resources = [r for r in datasets.MNIST.resources if r[0].startswith("t10k")]

    @property
    def raw_folder(self) -> str:  # torchvision names it after the class: keep "MNIST"
        return str(Path(self.root) / "MNIST" / "raw")


class _ArrayMNIST(Dataset):
    """Same per-image path as torchvision's MNIST, over uint8 arrays (the shipped sample)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform) -> None:
        self.data = torch.from_numpy(images.reshape(-1, 28, 28))
        self.targets = torch.from_numpy(labels.astype(np.int64))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        img = Image.fromarray(self.data[index].numpy(), mode="L")
        return self.transform(img), int(self.targets[index])


def idx_dir_usable(data_dir: Path | None) -> bool:
    return data_dir is not None and all(
        (data_dir / f"{n}.gz").is_file() or (data_dir / n).is_file() for n in IDX_FILES
    )


def make_dataset(data_dir: Path | None, tmp_root: Path) -> tuple[Dataset, str]:
    """(dataset, description). The IDX test split through torchvision, else the sample."""
    if idx_dir_usable(data_dir):
        raw = tmp_root / "MNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for name in IDX_FILES:
            if (data_dir / name).is_file():
                (raw / name).symlink_to((data_dir / name).resolve())
            else:  # torchvision reads unpacked IDX files; unpack into the temp dir
                with gzip.open(data_dir / f"{name}.gz", "rb") as src, open(raw / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        ds = _MNISTTest(str(tmp_root), train=False, transform=TRANSFORM)
        return ds, f"mnist-test ({len(ds)} images, torchvision.datasets.MNIST, {data_dir})"
    with np.load(SAMPLE_FILE) as f:
        ds = _ArrayMNIST(f["images"], f["labels"], TRANSFORM)
    return ds, f"mnist-sample ({len(ds)} images, {SAMPLE_FILE.name})"


class Generator(nn.Module):
    def __init__(self, latent_dim: int = 100, out_dim: int = 784) -> None:
        super().__init__()
        self.fc1 = nn.Linear(latent_dim, 256)
        self.fc2 = nn.Linear(256, 512)
        self.fc3 = nn.Linear(512, 1024)
        self.fc4 = nn.Linear(1024, out_dim)

    def forward(self, x):
        x = nn.functional.leaky_relu(self.fc1(x), 0.2)
        x = nn.functional.leaky_relu(self.fc2(x), 0.2)
        x = nn.functional.leaky_relu(self.fc3(x), 0.2)
        return torch.tanh(self.fc4(x))


class Discriminator(nn.Module):
    def __init__(self, in_dim: int = 784, dropout: float = 0.3) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, 1024)
        self.fc2 = nn.Linear(1024, 512)
        self.fc3 = nn.Linear(512, 256)
        self.fc4 = nn.Linear(256, 1)
        self.dropout = dropout

    def forward(self, x):
        x = nn.functional.leaky_relu(self.fc1(x), 0.2)
        x = nn.functional.dropout(x, self.dropout, self.training)
        x = nn.functional.leaky_relu(self.fc2(x), 0.2)
        x = nn.functional.dropout(x, self.dropout, self.training)
        x = nn.functional.leaky_relu(self.fc3(x), 0.2)
        x = nn.functional.dropout(x, self.dropout, self.training)
        return torch.sigmoid(self.fc4(x))


def run(
    *,
    images: int = 20000,
    warmup: int = 20,
    precision: str = "no",
    device: str = "cpu",
    data_dir: Path | None = DEFAULT_DATA_DIR,
    batch_size: int = 100,
    d_dropout: float = 0.3,
    num_workers: int = 0,
    seed: int = 0,
) -> dict:
    """Train until ``warmup`` steps + ``images`` timed images; return throughput and losses."""
    torch.manual_seed(seed)
    dev = torch.device(device)
    amp_dtype = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    with tempfile.TemporaryDirectory(prefix="tutorial_mnist_") as tmp:
        dataset, data_desc = make_dataset(data_dir, Path(tmp))
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers)

        G = Generator().to(dev)
        D = Discriminator(dropout=d_dropout).to(dev)
        criterion = nn.BCELoss()
        G_optimizer = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        D_optimizer = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        scaler = torch.amp.GradScaler(dev.type, enabled=precision == "fp16")

        def autocast():
            return torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None)

        def D_train(x):
            D.zero_grad()
            x_real = x.view(-1, 784).to(dev)
            y_real = torch.ones(x_real.size(0), 1, device=dev)
            z = torch.randn(x_real.size(0), 100, device=dev)
            y_fake = torch.zeros(x_real.size(0), 1, device=dev)
            with autocast():
                D_real_loss = criterion(D(x_real).float(), y_real)
                x_fake = G(z)
                D_fake_loss = criterion(D(x_fake.detach()).float(), y_fake)
                D_loss = D_real_loss + D_fake_loss
            scaler.scale(D_loss).backward()
            scaler.step(D_optimizer)
            scaler.update()
            return D_loss.item()

        def G_train(x):
            G.zero_grad()
            z = torch.randn(x.size(0), 100, device=dev)
            y = torch.ones(x.size(0), 1, device=dev)
            with autocast():
                G_loss = criterion(D(G(z)).float(), y)
            scaler.scale(G_loss).backward()
            scaler.step(G_optimizer)
            scaler.update()
            return G_loss.item()

        def sync():
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)

        steps_timed = max(1, images // batch_size)
        step, t0, D_losses, G_losses = 0, None, [], []
        while step < warmup + steps_timed:
            for x, _ in loader:
                if step == warmup:
                    sync()
                    t0 = time.perf_counter()
                    D_losses, G_losses = [], []
                D_losses.append(D_train(x))
                G_losses.append(G_train(x))
                step += 1
                if step == warmup + steps_timed:
                    break
        sync()
        seconds = time.perf_counter() - t0
    timed_images = steps_timed * batch_size
    return {
        "loop": "tutorial",
        "precision": precision,
        "device": device,
        "threads": torch.get_num_threads(),
        "data": data_desc,
        "batch_size": batch_size,
        "warmup_steps": warmup,
        "images": timed_images,
        "seconds": round(seconds, 4),
        "images_per_second": round(timed_images / seconds, 1),
        "d_loss": round(float(np.mean(D_losses)), 4),
        "g_loss": round(float(np.mean(G_losses)), 4),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=20000, help="timed images (after warm-up)")
    p.add_argument("--warmup", type=int, default=20, help="steps excluded from timing")
    p.add_argument("--precision", choices=["no", "bf16", "fp16"], default="no")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--d-dropout", type=float, default=0.3)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run(
        images=args.images,
        warmup=args.warmup,
        precision=args.precision,
        device=args.device,
        data_dir=args.data_dir,
        d_dropout=args.d_dropout,
        num_workers=args.num_workers,
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
