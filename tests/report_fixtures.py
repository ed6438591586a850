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
              quality_features: str | None = None, world_size: int = 2, speed: float = 1.0) -> Path:
    """A run directory at root/name with `completed` of `epochs` epochs done; `config`
    overrides or adds config.json keys (the newer contract: arch, dataset_info, ...)."""
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
    rows = [metrics_row(e, world_size) for e in range(1, completed + 1)]
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
