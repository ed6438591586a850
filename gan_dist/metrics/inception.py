"""`--features inception`: standard, paper-comparable FID through torchmetrics'
FrechetInceptionDistance (2048-d pool features of the FID Inception-v3 weights, which
torch-fidelity downloads on first use). Optional: `pip install 'gan_dist[inception]'`.

Gray images are repeated to 3 channels and every image is resized by torchmetrics to 299×299,
as the reference implementation does; the numbers are comparable to published FIDs only at the
published sample counts (50,000) and preparation.
"""

from __future__ import annotations

import torch

from gan_dist.errors import GanError

NAME = "inception"


def _metric():
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
    except ImportError:
        raise GanError("--features inception needs torchmetrics and torch-fidelity: "
                       "pip install 'gan_dist[inception]'") from None
    import contextlib
    import io

    try:
        with contextlib.redirect_stderr(io.StringIO()):  # torch.hub's "Downloading: ..." line
            return FrechetInceptionDistance(feature=2048, normalize=False)
    except Exception as err:  # noqa: BLE001 -- offline download failures surface as many types
        raise GanError(f"the FID Inception weights are not on this machine and cannot be downloaded "
                       f"({type(err).__name__}): run once where the internet is reachable (they are cached in "
                       "~/.cache/torch), or evaluate without --features inception") from None


def _rgb(images_u8: torch.Tensor) -> torch.Tensor:
    return images_u8.expand(-1, 3, -1, -1) if images_u8.shape[1] == 1 else images_u8


@torch.no_grad()
def inception_fd(real_u8, fake_u8, batch: int = 200) -> float:
    """FID between uint8 (N, C, H, W) real and generated images."""
    fid = _metric()
    for images, real in ((torch.as_tensor(real_u8), True), (torch.as_tensor(fake_u8), False)):
        for i in range(0, len(images), batch):
            fid.update(_rgb(images[i:i + batch]), real=real)
    return float(fid.compute())
