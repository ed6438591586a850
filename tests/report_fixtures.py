"""Synthetic run directories, shaped like what `gan train` writes, for the report tests."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image


def metrics_row(epoch: int, world_size: int = 1) -> dict:
    """Plausible numbers; epoch 10 reproduces the coursework's published caption exactly."""
    if epoch == 10:
        g, d, seconds = 2.1112, 0.7161, 21.12
    else:
        g = 0.9 + 1.5 * math.exp(-epoch / 25) + 0.01 * math.sin(epoch)
        d = 1.3 - 0.65 * math.exp(-epoch / 25)
        seconds = 20.0 + (epoch % 7) * 0.37
    return {"epoch": epoch, "g_loss": g, "d_loss": d, "d_real": 0.5 + 0.35 * math.exp(-epoch / 30),
            "d_fake": 0.5 - 0.4 * math.exp(-epoch / 30), "seconds": seconds,
            "images_per_second": 60000 / seconds, "world_size": world_size, "steps": 600,
            "elapsed_seconds": epoch * 20.5}


def write_grid(path: Path, seed: int, rows: int = 8) -> None:
    """A real rows x 8 grid PNG of 28x28 blobs (242 px wide with 2-pixel padding, like make_grid)."""
    rng = np.random.default_rng(seed)
    grid = np.zeros((rows * 30 + 2, 8 * 30 + 2), np.uint8)
    yy, xx = np.mgrid[:28, :28]
    for r in range(rows):
        for c in range(8):
            cy, cx = rng.uniform(9, 19, 2)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / rng.uniform(10, 40))
            grid[2 + 30 * r:30 + 30 * r, 2 + 30 * c:30 + 30 * c] = (255 * blob).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).convert("RGB").save(path)


def write_run(root: Path, *, epochs: int = 100, completed: int | None = None,
              sample_epochs=(10, 20, 50, 100), quality: bool = True, truncated: bool = False,
              state: str | None = None, name: str = "test-run", config: dict | None = None,
              events: list[dict] | None = None, grid_rows: int = 8,
              quality_features: str | None = None, world_size: int = 2, speed: float = 1.0,
              metrics_update=None) -> Path:
    """A run directory at root/name with `completed` of `epochs` epochs done; `config`
    overrides or adds config.json keys (the newer contract: arch, dataset_info, ...);
    `metrics_update(epoch)` returns keys that replace or extend each metrics row."""
    completed = epochs if completed is None else completed
    run = root / name
    run.mkdir(parents=True)
    overrides, config = config, {
        "dataset": "mnist", "data_dir": "data", "arch": "mlp", "loss": "nonsaturating",
        "k_disc": 1, "d_dropout": 0.3, "epochs": epochs, "batch_size": 100, "lr": 2e-4,
        "beta1": 0.5, "beta2": 0.999, "latent_dim": 100, "seed": 0, "precision": "no",
        "sample_epochs": list(sample_epochs), "eval_epochs": [10, 50, 100], "out": "runs",
        "name": name, "compile": False, "world_size": world_size, "per_process_batch": 100 // world_size,
        "steps_per_epoch": 600, "dataset_size": 60000, "image_shape": [1, 28, 28],
        "parameters": {"generator": 1486352, "discriminator": 1460225},
        "architecture": {
            "generator": ["Linear(100, 256)", "LeakyReLU(0.2)", "Linear(256, 512)", "LeakyReLU(0.2)",
                          "Linear(512, 1024)", "LeakyReLU(0.2)", "Linear(1024, 784)", "Tanh()"],
            "discriminator": ["Linear(784, 1024)", "LeakyReLU(0.2)", "Dropout(0.3)",
                              "Linear(1024, 512)", "LeakyReLU(0.2)", "Dropout(0.3)",
                              "Linear(512, 256)", "LeakyReLU(0.2)", "Dropout(0.3)",
                              "Linear(256, 1)", "Sigmoid()"]},
        "env": {"gan_dist": "0.1.0", "python": "3.11.2", "torch": "2.5.1", "accelerate": "1.2.0",
                "device": "cuda", "device_name": "NVIDIA H100 80GB HBM3", "hostname": "node01",
                "platform": "Linux-6.1-x86_64", "num_nodes": 1},
    }
    config.update(overrides or {})
    (run / "config.json").write_text(json.dumps(config, indent=2))
    if events is not None:
        (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    rows = [{**metrics_row(e, world_size), **(metrics_update(e) if metrics_update else {})}
            for e in range(1, completed + 1)]
    for row in rows:  # `speed` times faster: a larger world size, say
        row["seconds"] /= speed
        row["images_per_second"] *= speed
    lines = [json.dumps(row) for row in rows]
    text = "\n".join(lines) + "\n"
    if truncated:
        text += json.dumps(metrics_row(completed + 1, world_size))[:37]  # killed mid-write
    (run / "metrics.jsonl").write_text(text)
    for e in sorted(set(sample_epochs) | {epochs}):
        if e <= completed:
            write_grid(run / "samples" / f"epoch_{e:04d}.png", seed=e, rows=grid_rows)
    if quality:
        rows = [{"epoch": e, "fd": 40.0 / e ** 0.5, "kid": 0.2 / e, "modes": 10,
                 "kl_uniform": 0.05, "confident": 0.8 + e / 1000, "precision": 0.6 + e / 400,
                 "recall": 0.5 + e / 300, "samples": 10000} for e in (10, 50, 100) if e <= completed]
        if quality_features:
            rows = [{**r, "features": quality_features} for r in rows]
        (run / "quality.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if state:
        (run / "status.json").write_text(json.dumps({"state": state}))
    return run


CLASSES = ["airplane", "automobile", "bird", "<script>cat</script>", "deer", "dog", "frog",
           "horse", "ship", "truck"]


def dcgan_config(name: str = "dcgan-run") -> dict:
    """config.json keys of a conditional DCGAN run with EMA on a 10-class RGB dataset, as the
    newer writers record them (layer rows as dicts; class names from folder names)."""
    return {
        "name": name, "arch": "dcgan", "conditional": True, "ema_kimg": 10.0, "image_size": 32,
        "channels": 3, "width": 64, "dataset": "folder:/data/pets", "sample_source": "ema",
        "dataset_info": {"name": "folder:/data/pets", "title": "Pets <i>folder</i>", "size": 5000,
                         "image_shape": [3, 32, 32], "classes": CLASSES},
        "image_shape": [3, 32, 32], "dataset_size": 5000,
        "grid": {"rows": 10, "cols": 8, "row_labels": CLASSES},
        "parameters": {"generator": 3_576_704, "discriminator": 2_765_568},
        "architecture": {
            "generator": [
                {"layer": "Embedding(10, 100)", "output": "(B, 100)", "parameters": 1000},
                {"layer": "ConvTranspose2d(100, 256, 4, 1, 0)", "output": "(B, 256, 4, 4)", "parameters": 409_600},
                {"layer": "BatchNorm2d(256)", "output": "(B, 256, 4, 4)", "parameters": 512},
                {"layer": "ConvTranspose2d(256, 3, 4, 2, 1)", "output": "(B, 3, 32, 32)", "parameters": 3_165_592},
                {"layer": "Tanh()", "output": "(B, 3, 32, 32)", "parameters": 0}],
            "discriminator": [
                {"layer": "Conv2d(3, 64, 4, 2, 1)", "output": "(B, 64, 16, 16)", "parameters": 3072},
                {"layer": "LeakyReLU(0.2)", "output": "(B, 64, 16, 16)", "parameters": 0},
                {"layer": "Conv2d(64, 1, 4, 1, 0)", "output": "(B, 1, 13, 13)", "parameters": 2_762_496}]},
    }


def events_stop_resume(t0: float = 1_700_000_000.0) -> list[dict]:
    """Started on 2 processes, stopped mid-epoch 41 by Slurm, resumed on 4 processes x 2 nodes."""
    return [
        {"event": "start", "time": t0, "epoch": 0, "step": 0, "world_size": 2, "num_nodes": 1},
        {"event": "stop", "time": t0 + 830.0, "epoch": 40, "step": 120, "world_size": 2, "num_nodes": 1,
         "reason": "SIGUSR1 (Slurm time limit)"},
        {"event": "resume", "time": t0 + 4000.0, "epoch": 40, "step": 120, "world_size": 4, "num_nodes": 2},
        {"event": "finish", "time": t0 + 5300.0, "epoch": 100, "step": 0, "world_size": 4, "num_nodes": 2},
    ]


def hostile_template(root: Path, name: str, body: str) -> Path:
    """A --template-dir holding one template `name` whose `body` may name OUTSIDE, a real image
    outside every run directory (root/outside.png, 50x50) that must never be loaded."""
    outside = root / "outside.png"
    Image.new("RGB", (50, 50), "red").save(outside)
    templates = root / "templates"
    templates.mkdir()
    (templates / name).write_text(body.replace("OUTSIDE", outside.as_uri()))
    return templates


# --- the modern recipe (issue 26) ---------------------------------------------------------------
def _layers(rows: list[tuple], blocks: dict[str, str]) -> list[dict]:
    """Layer rows as nets/describe.py writes them: block and block_type where a layer sits in one."""
    out = []
    for layer, output, parameters, block in rows:
        row = {"layer": layer, "output": output, "parameters": parameters}
        if block:
            row["block"], row["block_type"] = block, blocks[block.split(".")[0]]
        out.append(row)
    return out


def _conv(c_in: int, c_out: int, k: int = 1, groups: int = 1) -> str:
    pad = ", padding=(1, 1)" if k == 3 else ""
    grouped = f", groups={groups}" if groups > 1 else ""
    return f"Conv2d({c_in}, {c_out}, kernel_size=({k}, {k}), stride=(1, 1){pad}{grouped}, bias=False)"


def _block(c: int, size: int, name: str) -> list[tuple]:
    """R3GAN's block at width c: 1x1 to 2c, act, grouped 3x3, act, 1x1 back (nets/resnet.py)."""
    shape, wide = f"(B, {c}, {size}, {size})", f"(B, {2 * c}, {size}, {size})"
    groups = 2 * c // 16 if 2 * c % 16 == 0 else 1
    act = (f"BiasedLeakyReLU({2 * c}, slope=0.2)", wide, 2 * c, name)
    return [(_conv(c, 2 * c), wide, 2 * c * c, name), act,
            (_conv(2 * c, 2 * c, 3, groups), wide, 2 * c * 2 * c * 9 // groups, name), act,
            (_conv(2 * c, c), shape, 2 * c * c, name)]


def resnet_architecture() -> dict:
    """The layer tables `gan train --arch resnet --width 8 --blocks 1` wrote at 28 px (real numbers)."""
    g = ([("GenerativeBasis(100 -> 32 x 7x7)", "(B, 32, 7, 7)", 4768, None)] + _block(32, 7, "net.0")
         + [(_conv(32, 16), "(B, 16, 7, 7)", 512, None),
            ("Resample(16, up, filter=[1.0, 2.0, 1.0])", "(B, 16, 14, 14)", 0, None)] + _block(16, 14, "net.3")
         + [(_conv(16, 8), "(B, 8, 14, 14)", 128, None),
            ("Resample(8, up, filter=[1.0, 2.0, 1.0])", "(B, 8, 28, 28)", 0, None)] + _block(8, 28, "net.6")
         + [(_conv(8, 1), "(B, 1, 28, 28)", 8, None)])
    d = ([(_conv(1, 8), "(B, 8, 28, 28)", 8, None)] + _block(8, 28, "features.1")
         + [("Resample(8, down, filter=[1.0, 2.0, 1.0])", "(B, 8, 14, 14)", 0, None),
            (_conv(8, 16), "(B, 16, 14, 14)", 128, None)] + _block(16, 14, "features.4")
         + [("Resample(16, down, filter=[1.0, 2.0, 1.0])", "(B, 16, 7, 7)", 0, None),
            (_conv(16, 32), "(B, 32, 7, 7)", 512, None)] + _block(32, 7, "features.7")
         + [("Conv2d(32, 32, kernel_size=(7, 7), stride=(1, 1), groups=32, bias=False)", "(B, 32, 1, 1)", 1568, None),
            ("Flatten(start_dim=1, end_dim=-1)", "(B, 32)", 0, None),
            ("Linear(in_features=32, out_features=1, bias=True)", "(B, 1)", 33, "head")])
    blocks = {"net": "ResidualBlock", "features": "ResidualBlock", "head": "ProjectionHead"}
    return {"generator": _layers(g, blocks), "discriminator": _layers(d, blocks)}


MNIST_SAMPLE = {"dataset": "mnist-sample", "image_shape": [1, 28, 28], "dataset_size": 5000, "eval_epochs": [],
                "dataset_info": {"name": "mnist-sample", "size": 5000, "image_shape": [1, 28, 28],
                                 "classes": [str(d) for d in range(10)], "labelled": True}}


def rpgan_config(name: str = "rpgan-run") -> dict:
    """resnet + rpgan + R1/R2 every step + DiffAugment translation with ADA's p + EMA, from a preset."""
    return {**MNIST_SAMPLE, "name": name, "arch": "resnet", "width": 8, "blocks": 1, "ema_kimg": 10.0,
            "sample_source": "ema", "loss": "rpgan", "r1": 0.1, "r2": 0.1, "reg_interval": 1, "pack": 1,
            "augment": "translation", "augment_p": "auto", "ada_target": 0.6, "ada_kimg": 500.0,
            "preset": "resnet-mnist@1", "batch_size": 500, "per_process_batch": 500, "steps_per_epoch": 10,
            "lr": 2e-4, "d_dropout": 0.3, "num_classes": 0,
            "parameters": {"generator": 27144, "discriminator": 23977}, "architecture": resnet_architecture(),
            "loss_terms": {"d_loss": "softplus(-(D(x_r) - D(G(z))))", "g_loss": "softplus(-(D(G(z)) - D(x_r)))"}}


def rpgan_metrics(epoch: int) -> dict:
    """Near ln 2 as D loses its edge; penalties logged apart; ADA's p rising from 0 after epoch 5."""
    return {"g_loss": 0.69 + 0.8 * math.exp(-epoch / 5), "d_loss": 0.69 - 0.5 * math.exp(-epoch / 5),
            "d_real": 0.55 + 0.3 * math.exp(-epoch / 6), "d_fake": 0.52 - 0.3 * math.exp(-epoch / 6),
            "r1_penalty": 0.0005 + 0.002 * math.exp(-epoch / 10), "r2_penalty": 0.0004 + 0.001 * math.exp(-epoch / 10),
            "augment_p": round(min(1.0, max(0.0, 0.02 * (epoch - 5))), 6), "steps": 10}


def hinge_config(name: str = "hinge-run") -> dict:
    """dcgan + hinge + PacGAN pairs + lazy R1 (every 4th D step) + DiffAugment at a fixed p."""
    g = [("Linear(in_features=100, out_features=6272, bias=False)", "(B, 6272)", 627200, None),
         ("GroupSyncBatchNorm(128, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)",
          "(B, 128, 7, 7)", 256, None),
         ("ConvTranspose2d(128, 64, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1), bias=False)",
          "(B, 64, 14, 14)", 131072, None),
         ("ConvTranspose2d(64, 1, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1))", "(B, 1, 28, 28)", 1025, None),
         ("Tanh", "(B, 1, 28, 28)", 0, None)]
    d = [("Conv2d(2, 64, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1))", "(B, 64, 14, 14)", 2112, None),
         ("LeakyReLU(negative_slope=0.2)", "(B, 64, 14, 14)", 0, None),
         ("Flatten(start_dim=1, end_dim=-1)", "(B, 12544)", 0, None),
         ("Linear(in_features=12544, out_features=1, bias=True)", "(B, 1)", 12545, "head")]
    blocks = {"head": "ProjectionHead"}
    return {**MNIST_SAMPLE, "name": name, "arch": "dcgan", "width": 64, "ema_kimg": 10.0, "sample_source": "ema",
            "sync_bn": False, "loss": "hinge", "r1": 0.5, "r2": 0.0, "reg_interval": 4, "pack": 2,
            "augment": "translation,cutout", "augment_p": "0.5", "batch_size": 128, "per_process_batch": 128,
            "steps_per_epoch": 39, "lr": 2e-4,
            "parameters": {"generator": 759553, "discriminator": 14657},
            "architecture": {"generator": _layers(g, blocks), "discriminator": _layers(d, blocks)}}


def hinge_metrics(epoch: int) -> dict:
    """L_D rising towards 2; L_G = -D(G(z)) ends below 0 (D scores fakes above 0): the axis must show it."""
    return {"g_loss": -0.2 + 1.2 * math.exp(-epoch / 6), "d_loss": 2.0 - 1.5 * math.exp(-epoch / 6),
            "d_real": 0.6 + 0.2 * math.exp(-epoch / 6), "d_fake": 0.52 - 0.3 * math.exp(-epoch / 6),
            "r1_penalty": 0.01 * math.exp(-epoch / 8), "augment_p": 0.5, "steps": 39}
