"""Layer tables of any network, traced from one forward pass: for config.json and the report."""

from __future__ import annotations

import torch
from torch import nn

from gan_dist.nets import label_values


def _shape(value) -> str:
    if isinstance(value, torch.Tensor):
        return "(B, " + ", ".join(str(d) for d in value.shape[1:]) + ")" if value.ndim > 1 else "(B,)"
    return "—"


@torch.no_grad()
def layer_table(module: nn.Module, *inputs: torch.Tensor) -> list[dict]:
    """One row per leaf layer in call order: {"layer", "output", "parameters"}, and
    {"block", "block_type"} (its enclosing module's name and class) for a layer inside a
    module that is neither the network nor a plain container (a residual block).

    Traced with forward hooks on a batch of 2 in eval mode, so it works for every
    architecture without the network listing itself; the module's mode is restored."""
    rows: list[dict] = []
    hooks = []
    blocks = _enclosing_blocks(module)
    for leaf in (m for m in module.modules() if not list(m.children())):
        def record(layer, _args, output, rows=rows):
            row = {"layer": _layer_text(layer), "output": _shape(output),
                   "parameters": sum(p.numel() for p in layer.parameters(recurse=False))}
            if layer in blocks:
                row["block"], row["block_type"] = blocks[layer]
            rows.append(row)
        hooks.append(leaf.register_forward_hook(record))
    was_training = module.training
    module.eval()
    try:
        module(*inputs)
    finally:
        module.train(was_training)
        for hook in hooks:
            hook.remove()
    return rows


CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _enclosing_blocks(module: nn.Module) -> dict[nn.Module, tuple[str, str]]:
    """leaf -> (name, class) of the innermost module around it that is neither the network
    nor a plain container: a residual block, say, whose layers the report shows as one unit."""
    blocks: dict[nn.Module, tuple[str, str]] = {}
    for name, block in module.named_modules():  # outer before inner: inner blocks win
        if name and not isinstance(block, CONTAINERS) and list(block.children()):
            for leaf in block.modules():
                if not list(leaf.children()):
                    blocks[leaf] = (name, type(block).__name__)
    return blocks


def _layer_text(layer: nn.Module) -> str:
    extra = layer.extra_repr()
    return f"{type(layer).__name__}({extra})" if extra else type(layer).__name__


def describe_models(G: nn.Module, D: nn.Module) -> dict[str, list[dict]]:
    """Both networks' tables from example inputs built from the generator's own declarations."""
    device = next(G.parameters()).device
    z = torch.zeros(2, G.latent_dim, device=device)
    labels = torch.zeros(2, dtype=torch.long, device=device) if G.num_classes else None  # D's labels
    second = torch.zeros(2, dtype=torch.long, device=device) if label_values(G) else None  # class or code
    g_args = (z,) if second is None else (z, second)
    pack = getattr(getattr(D, "module", D), "pack", 1)  # a packing D reads 2 packs of `pack` images
    images = torch.zeros(2 * pack, *G.image_shape, device=device)
    d_args = (images, labels) if labels is not None else (images,)  # D never takes the codes
    return {"generator": layer_table(G, *g_args), "discriminator": layer_table(D, *d_args)}
