"""Pictures of training: the loss curve (matplotlib) and image grids (PIL)."""

from __future__ import annotations

import csv
import os

import numpy as np
import torch
from PIL import Image, ImageDraw


def _to_uint8(x: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(3, h, w) [0, 1] -> (H, W, 3) uint8, nearest-resized to ``size`` (H, W)."""
    img = Image.fromarray((x.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8))
    return np.asarray(img.resize((size[1], size[0]), Image.BILINEAR))


def image_grid(columns: dict[str, torch.Tensor], path: str, tile: int = 128, labels: list[str] | None = None) -> str:
    """One row per item, one column per named (B, 3, h, w) tensor; a header names the columns."""
    names = list(columns)
    b = next(iter(columns.values())).shape[0]
    head, pad = 18, 2
    w = len(names) * (tile + pad) + pad
    h = head + b * (tile + pad) + pad
    sheet = Image.new("RGB", (w, h), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for c, name in enumerate(names):
        draw.text((pad + c * (tile + pad) + 4, 3), name, fill=(230, 230, 230))
        for r in range(b):
            tile_img = Image.fromarray(_to_uint8(columns[name][r], (tile, tile)))
            sheet.paste(tile_img, (pad + c * (tile + pad), head + pad + r * (tile + pad)))
    if labels:
        for r, text in enumerate(labels[:b]):
            draw.text((pad + 3, head + pad + r * (tile + pad) + tile - 12), text, fill=(255, 255, 0))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sheet.save(path)
    return path


def loss_curve(csv_path: str, png_path: str) -> str:
    """Loss per step (raw and smoothed) and validation PSNR, from the training CSV log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, losses, vsteps, vpsnr, vbase, vcolour = [], [], [], [], [], []
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("loss"):
                steps.append(int(row["step"]))
                losses.append(float(row["loss"]))
            if row.get("val_psnr_masked"):
                vsteps.append(int(row["step"]))
                vpsnr.append(float(row["val_psnr_masked"]))
                vbase.append(float(row["val_baseline_psnr_masked"]))
                vcolour.append(float(row["val_colour_psnr_masked"]) if row.get("val_colour_psnr_masked") else np.nan)
    fig, axes = plt.subplots(1, 2 if vsteps else 1, figsize=(10 if vsteps else 6, 3.6), squeeze=False)
    ax = axes[0, 0]
    ax.plot(steps, losses, color="#9ab", lw=0.8, label="loss")
    if len(losses) >= 5:
        k = max(2, len(losses) // 20)
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, color="#135", lw=1.6, label=f"mean of {k}")
    ax.set_xlabel("step")
    ax.set_ylabel("diffusion loss (MSE)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    if vsteps:
        ax = axes[0, 1]
        ax.plot(vsteps, vpsnr, "o-", color="#c41", label="model (EMA)")
        ax.plot(vsteps, vbase, "--", color="#555", label="copy input")
        if not np.isnan(vcolour).all():
            ax.plot(vsteps, vcolour, ":", color="#27a", lw=1.6, label="colour transfer")
        ax.set_xlabel("step")
        ax.set_ylabel("val masked PSNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path
