"""Generator weights as safetensors (no pickle), with what is needed to rebuild the network."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file

from gan_dist.errors import GanError
from gan_dist.nets import build_models


def save_generator(generator: torch.nn.Module, path: Path, *, arch: str, latent_dim: int,
                   image_shape, epoch: int) -> None:
    """Write atomically: a temp file renamed into place, so readers never see half a file."""
    meta = {"arch": arch, "latent_dim": str(latent_dim), "image_shape": json.dumps(list(image_shape)),
            "epoch": str(epoch)}
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in generator.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


def load_generator(path: Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the generator from a safetensors file written by `save_generator`."""
    path = Path(path)
    if not path.is_file():
        raise GanError(f"generator weights {path} not found: train the run first or pick another epoch")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
        tensors = load_file(str(path), device="cpu")
        info = {"arch": meta["arch"], "latent_dim": int(meta["latent_dim"]),
                "image_shape": tuple(json.loads(meta["image_shape"])), "epoch": int(meta["epoch"])}
    except Exception as err:  # safetensors raises several types on damaged files
        raise GanError(f"{path} is not a readable generator file ({err}): re-run training or pick another file") from None
    generator, _ = build_models(info["arch"], latent_dim=info["latent_dim"], image_shape=info["image_shape"], d_dropout=0.0)
    generator.load_state_dict(tensors)
    return generator.to(device).eval(), info
