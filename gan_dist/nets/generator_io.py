"""Generator weights as safetensors (no pickle), with the NetSpec that rebuilds the network."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file

from gan_dist.atomic import write_atomic
from gan_dist.errors import GanError
from gan_dist.nets import NetSpec, build_generator


def save_generator(generator: torch.nn.Module, path: Path, *, spec: NetSpec, epoch: int) -> None:
    """Write atomically, so readers never see half a file."""
    meta = {"spec": json.dumps(spec.to_dict()), "epoch": str(epoch),
            # the first format's keys, still read by older tools
            "arch": spec.arch, "latent_dim": str(spec.latent_dim), "image_shape": json.dumps(list(spec.image_shape))}
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in generator.state_dict().items()}
    write_atomic(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def read_generator_info(path: Path) -> dict:
    """{"spec": NetSpec, "epoch": int} from the file's metadata, without loading the weights."""
    with safe_open(str(path), framework="pt") as fh:
        meta = dict(fh.metadata() or {})
    if "spec" in meta:
        spec = NetSpec.from_dict(json.loads(meta["spec"]))
    else:  # the first format: an unconditional network described by three keys
        spec = NetSpec(arch=meta["arch"], latent_dim=int(meta["latent_dim"]),
                       image_shape=tuple(json.loads(meta["image_shape"])))
    return {"spec": spec, "epoch": int(meta["epoch"])}


def load_generator(path: Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the generator from a safetensors file written by `save_generator`, in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise GanError(f"generator weights {path} not found: train the run first or pick another epoch")
    try:
        info = read_generator_info(path)
        tensors = load_file(str(path), device="cpu")
        generator = build_generator(info["spec"])
        generator.load_state_dict(tensors)
    except GanError:
        raise
    except Exception as err:  # safetensors and load_state_dict raise several types on damaged files
        raise GanError(f"{path} is not a readable generator file ({err}): re-run training or pick another file") from None
    info["latent_dim"] = info["spec"].latent_dim
    return generator.to(device).eval(), info
