"""Image metrics for relighting: full-frame and masked PSNR / SSIM (torchmetrics).

Masked PSNR is the PSNR of the mean squared error over foreground pixels
(``sum(mask * (x - y)^2) / sum(mask)`` over the channel-expanded mask);
masked SSIM is torchmetrics' SSIM map averaged under the mask. Images are
(B, 3, H, W) in [0, 1]; ``data_range`` is always given. Values are per image.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3))


def masked_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.expand_as(pred)
    mse = (m * (pred - target) ** 2).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3)).clamp(min=1e-8)
    return 10.0 * torch.log10(1.0 / mse.clamp(min=1e-10))


def ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    # small images (the tiny model's 64 px) need a smaller window than the default 11
    k = 11 if min(pred.shape[-2:]) >= 64 else 7
    _, smap = structural_similarity_index_measure(pred, target, data_range=1.0, kernel_size=k,
                                                  reduction="none", return_full_image=True)
    if mask is None:
        return smap.mean(dim=(1, 2, 3))
    m = mask.expand_as(smap)
    return (m * smap).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3)).clamp(min=1e-8)


def all_metrics(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    pred, target, mask = pred.float().cpu(), target.float().cpu(), mask.float().cpu()
    return {
        "psnr_masked": masked_psnr(pred, target, mask),
        "psnr": psnr(pred, target),
        "ssim_masked": ssim(pred, target, mask),
        "ssim": ssim(pred, target),
    }
