"""Contact sheet of a catalog's HDR maps: a thumbnail per map, labelled with name and split."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from assets_manifest import envmap, hdri_io
from assets_manifest.schema import SPLITS, read_rows, resolve_uri

SPLIT_COLOURS = {"train": (90, 170, 90), "val": (210, 170, 60), "test": (200, 80, 80), "unassigned": (128, 128, 128)}


def thumbnail(rgb: np.ndarray, width: int) -> np.ndarray:
    """Auto-exposed LDR thumbnail: median luminance to mid-grey, then Reinhard on luminance.

    Tone-mapping luminance only keeps the hue of bright lights (a coloured
    rim light stays coloured instead of clipping to white).
    """
    step = max(rgb.shape[1] // width, 1)
    small = np.maximum(rgb[::step, ::step], 0.0)
    lum = envmap.luminance(small)
    small = small * (0.18 / max(float(np.median(lum)), 1e-6))
    lum = envmap.luminance(small)[..., None]
    mapped = small / (1.0 + lum)
    peak = mapped.max(axis=-1, keepdims=True)
    mapped = mapped / np.maximum(peak, 1.0)  # bring out-of-gamut colours back, keeping hue
    img = Image.fromarray(envmap.ldr_encode(mapped * 1.6))
    return np.asarray(img.resize((width, width // 2), Image.BILINEAR))


def hdri_sheet(manifest_path: str, out_png: str, columns: int = 6, width: int = 256, progress: bool = True) -> str:
    rows = [r for r in read_rows(manifest_path) if r["kind"] == "hdri"]
    rows.sort(key=lambda r: (SPLITS.index(r["split"]), r["uri"]))
    if not rows:
        raise ValueError(f"{manifest_path}: no HDRIs to show")
    label_h, pad = 16, 4
    cell_w, cell_h = width + pad, width // 2 + label_h + pad
    n_rows = (len(rows) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * cell_w + pad, n_rows * cell_h + pad), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for i, r in enumerate(tqdm(rows, desc="hdri sheet", unit="map", disable=not progress)):
        x, y = pad + (i % columns) * cell_w, pad + (i // columns) * cell_h
        rgb = hdri_io.read_hdri(resolve_uri(r["uri"], manifest_path))
        sheet.paste(Image.fromarray(thumbnail(rgb, width)), (x, y))
        draw.rectangle([x, y + width // 2, x + width - 1, y + width // 2 + label_h - 2], fill=SPLIT_COLOURS[r["split"]])
        draw.text((x + 3, y + width // 2 + 1), f"{r['name']}  [{r['split']}]", fill=(0, 0, 0))
    sheet.save(out_png)
    return out_png
