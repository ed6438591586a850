"""The recipe's D step under real data parallelism (gloo, 2 CPU processes): the relativistic
loss with R1 and R2 through a DDP-wrapped D with DiffAugment (resnet with packing; dcgan with
synchronised BatchNorm) gives, after DDP's one all-reduce, the gradients one process computes
over the global batch. The penalty's
input gradient comes from torch.autograd.grad(create_graph=True) and one ordinary backward
follows (pytorch#63812); a penalty-only step needs StyleGAN2-ADA's `logits * 0` term so that
every weight joins the backward (pytorch#47562)."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from gan_dist.nets import NetSpec, build_models
from gan_dist.nets.dcgan import DCGANDiscriminator
from gan_dist.nets.layers import set_sync_batchnorm
from gan_dist.training.augment import augment
from gan_dist.training.losses import LOSSES
from gan_dist.training.penalties import r1_r2_penalties

pytestmark = [pytest.mark.slow, pytest.mark.multiproc]

GLOBAL_BATCH, PACK, OPS = 8, 2, ("translation", "cutout", "color")
SPEC = NetSpec("resnet", 16, (1, 28, 28), width=8, blocks=1, pack=PACK)
DCGAN_SPEC = NetSpec("dcgan", 16, (1, 28, 28), width=8)


def batch():
    g = torch.Generator().manual_seed(3)
    return torch.rand(GLOBAL_BATCH, 1, 28, 28, generator=g) * 2 - 1, torch.rand(GLOBAL_BATCH, 1, 28, 28, generator=g) * 2 - 1


def d_gradients(D, rows: slice, penalty_only: bool) -> dict[str, torch.Tensor]:
    """One D step's gradients on the rows `rows` of the global batch (all rows: 1 process)."""
    real, fake = (t[rows] for t in batch())
    x = torch.cat([real, fake]).requires_grad_(True)  # the penalty's inputs: before augmentation
    g = torch.Generator().manual_seed(11)  # drawn for the global batch; each process takes its rows
    seen = torch.cat([augment(x[: len(real)], OPS, 0.5, g, rows=rows, batch=GLOBAL_BATCH),
                      augment(x[len(real):], OPS, 0.5, g, rows=rows, batch=GLOBAL_BATCH)])
    pack = getattr(getattr(D, "module", D), "pack", 1)
    if isinstance(getattr(D, "module", D), DCGANDiscriminator):  # BatchNorm: real and fake apart
        logits = D(seen, None, groups=2)
    else:
        logits = D(seen)
    n = len(real) // pack  # real packs come first
    r1, r2 = r1_r2_penalties(logits, x, len(real), r1=0.7, r2=0.3)
    if penalty_only:  # StyleGAN2-ADA's lazy "Dreg" phase: logits * 0 keeps every weight in the graph
        loss = (logits * 0).sum() + r1 + r2
    else:
        loss = LOSSES["rpgan"].d_loss(logits[:n], logits[n:]) + r1 + r2
    loss.backward()
    module = getattr(D, "module", D)
    return {name: p.grad.clone() for name, p in module.named_parameters()}


def fresh_d(arch: str = "resnet"):
    torch.manual_seed(0)
    _, D = build_models(SPEC if arch == "resnet" else DCGAN_SPEC)
    set_sync_batchnorm(D)  # dcgan: BatchNorm statistics over both processes (--sync-bn)
    with torch.no_grad():  # non-zero last convs, so the blocks' weights all get gradients
        for p in D.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return D


def worker(rank: int, world: int, folder: str, penalty_only: bool, arch: str) -> None:
    torch.set_num_threads(1)  # two processes on a shared machine
    torch.distributed.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank,
                                         world_size=world)
    try:
        D = torch.nn.parallel.DistributedDataParallel(fresh_d(arch))
        share = GLOBAL_BATCH // world
        grads = d_gradients(D, slice(rank * share, (rank + 1) * share), penalty_only)
        save_file({k: v.contiguous() for k, v in grads.items()}, os.path.join(folder, f"grads_{rank}.safetensors"))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.parametrize("arch, penalty_only", [("resnet", False), ("resnet", True), ("dcgan", False)])
def test_two_processes_give_one_process_gradients_with_r1_r2(tmp_path, arch, penalty_only):
    """resnet: packing, no BatchNorm. dcgan: the double backward also runs through its
    synchronised BatchNorm's autograd-aware all-reduce."""
    torch.multiprocessing.spawn(worker, args=(2, str(tmp_path), penalty_only, arch), nprocs=2, join=True)
    one = d_gradients(fresh_d(arch), slice(0, GLOBAL_BATCH), penalty_only)
    two = [load_file(str(tmp_path / f"grads_{rank}.safetensors")) for rank in range(2)]
    assert one.keys() == two[0].keys()
    for name, grad in one.items():
        assert torch.equal(two[0][name], two[1][name]), name  # DDP left both processes the same gradient
        assert torch.allclose(two[0][name], grad, rtol=1e-4, atol=1e-6), name
    assert any(grad.abs().max() > 0 for grad in one.values())
