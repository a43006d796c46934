"""Learned evaluation metrics from local weights only: LPIPS and an identity embedding distance.

Nothing here downloads. torchmetrics' LPIPS needs torchvision and fetches its
backbone on first use, so LPIPS v0.1 (Zhang et al. 2018, the ``lpips``
package's default ``lpips=True`` model) is written out in plain torch:
scale the [-1, 1] inputs, take five ReLU stages of AlexNet or VGG16,
unit-normalise each over channels, square the difference, weight channels by
the learned 1x1 "lin" layers, average spatially and sum the stages. Weights,
by :func:`load_lpips`:

* one file holding an ``lpips.LPIPS(net=...)`` state dict (``net.sliceK.N.*``
  and ``linK.model.1.weight``), or torchvision ``features.N.*`` keys together
  with ``linK.model.1.weight``;
* or a folder with torchvision's backbone file (``alexnet-owt-*.pth`` /
  ``vgg16-*.pth``) and the ``lpips`` package's head file (``alex.pth`` / ``vgg.pth``).

The backbone (AlexNet or VGG16) is read off the first convolution's shape.
Masked LPIPS averages the per-pixel map (each stage upsampled to the image,
as ``lpips``' ``spatial=True``) under the mask.

Identity (:func:`load_identity`): any face-embedding network as a TorchScript
file, or a state dict plus ``--identity-arch module:callable`` that builds the
module. It gets (B, 3, S, S) images in [-1, 1] (FaceNet/ArcFace convention);
the distance is the L2 distance of the unit-normalised embeddings (in [0, 2]),
SynthLight's "FN" column.
"""

from __future__ import annotations

import glob
import importlib
import os
import re

import torch
import torch.nn.functional as F
from torch import nn

from assets_manifest.cli_errors import runtime
from relight.inputs import InputError

# torchvision layouts: (conv out-channels or "M" for max-pool) and the ReLU indices LPIPS taps
_ALEX = [("c", 3, 64, 11, 4, 2), ("r",), ("m", 3, 2), ("c", 64, 192, 5, 1, 2), ("r",), ("m", 3, 2),
         ("c", 192, 384, 3, 1, 1), ("r",), ("c", 384, 256, 3, 1, 1), ("r",), ("c", 256, 256, 3, 1, 1), ("r",)]
_VGG_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
TAPS = {"alex": [1, 4, 7, 9, 11], "vgg": [3, 8, 15, 22, 29]}
CHANNELS = {"alex": [64, 192, 384, 256, 256], "vgg": [64, 128, 256, 512, 512]}


def _features(net: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    if net == "alex":
        for spec in _ALEX:
            if spec[0] == "c":
                _, i, o, k, s, p = spec
                layers.append(nn.Conv2d(i, o, k, s, p))
            elif spec[0] == "r":
                layers.append(nn.ReLU())
            else:
                layers.append(nn.MaxPool2d(spec[1], spec[2]))
        return nn.Sequential(*layers)
    c_in = 3
    for v in _VGG_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU()]
            c_in = v
    return nn.Sequential(*layers)


class LPIPS(nn.Module):
    """LPIPS v0.1; ``forward(a, b, mask=None)`` takes [0, 1] images, returns per-image distances."""

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in TAPS:
            raise ValueError(f"LPIPS net {net!r}: alex or vgg")
        self.net = net
        self.features = _features(net)[: TAPS[net][-1] + 1]
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS[net])
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def _stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x * 2 - 1) - self.shift) / self.scale
        out, taps = [], set(TAPS[self.net])
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in taps:
                out.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    @torch.no_grad()
    def forward(self, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        fa, fb = self._stages(a.float()), self._stages(b.float())
        if mask is None:
            return sum(lin((x - y) ** 2).mean(dim=(2, 3)) for lin, x, y in zip(self.lins, fa, fb))[:, 0]
        size = a.shape[-2:]
        spatial = sum(F.interpolate(lin((x - y) ** 2), size=size, mode="bilinear", align_corners=False)
                      for lin, x, y in zip(self.lins, fa, fb))
        m = mask.float()
        return (spatial * m).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3)).clamp(min=1e-8)


_BACKBONE_KEY = re.compile(r"^(?:net\.slice\d+\.|features\.)(\d+)\.(weight|bias)$")
_LIN_KEY = re.compile(r"^lin(\d)\.model\.1\.weight$")


def _load_state(path: str) -> dict:
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InputError(f"{path}: not a torch state dict ({str(e).strip().splitlines()[0][:120]})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise InputError(f"{path}: not a torch state dict")
    return sd


def load_lpips(path: str, device: torch.device | str = "cpu") -> LPIPS:
    """LPIPS from local weights (see the module docstring for the accepted layouts)."""
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "*.pth")) + glob.glob(os.path.join(path, "*.pt")))
        sd: dict = {}
        for f in files:
            sd.update(_load_state(f))
    elif os.path.isfile(path):
        sd = _load_state(path)
    else:
        raise runtime(InputError(f"--lpips-weights {path}: file or folder not found"))
    backbone, lins = {}, {}
    for k, v in sd.items():
        if m := _BACKBONE_KEY.match(k):
            backbone[f"{m.group(1)}.{m.group(2)}"] = v
        elif m := _LIN_KEY.match(k):
            lins[int(m.group(1))] = v
    first = backbone.get("0.weight")
    if first is None:
        raise InputError(f"--lpips-weights {path}: no backbone weights (features.0.weight or net.slice1.0.weight)")
    net = {(64, 3, 11, 11): "alex", (64, 3, 3, 3): "vgg"}.get(tuple(first.shape))
    if net is None:
        raise InputError(f"--lpips-weights {path}: first conv {tuple(first.shape)} is neither AlexNet nor VGG16")
    if sorted(lins) != list(range(5)):
        raise InputError(f"--lpips-weights {path}: needs the five lpips heads lin0..lin4.model.1.weight "
                         f"(found {sorted(lins)})")
    model = LPIPS(net)
    want = {k for k in model.features.state_dict()}
    missing = sorted(want - set(backbone))
    if missing:
        raise InputError(f"--lpips-weights {path}: {net} backbone lacks {missing[0]}")
    try:
        model.features.load_state_dict({k: backbone[k] for k in want})
        for i, lin in enumerate(model.lins):
            lin.weight.copy_(lins[i].reshape(lin.weight.shape))
    except RuntimeError as e:
        raise InputError(f"--lpips-weights {path}: wrong shapes for {net} ({str(e).splitlines()[-1].strip()})") from None
    return model.to(device)


class Identity(nn.Module):
    """Wraps an embedding network: resize to ``size``, map to [-1, 1], L2 distance of unit embeddings."""

    def __init__(self, net: nn.Module, size: int):
        super().__init__()
        self.net, self.size = net.eval(), size

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x.float(), size=(self.size, self.size), mode="bilinear", align_corners=False,
                          antialias=True) * 2 - 1
        e = self.net(x)
        if isinstance(e, (tuple, list)):
            e = e[0]
        return F.normalize(e.flatten(1).float(), dim=1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (self.embed(a) - self.embed(b)).norm(dim=1)


def load_identity(path: str, arch: str | None = None, size: int = 160,
                  device: torch.device | str = "cpu") -> Identity:
    """A TorchScript file, or a state dict with ``arch`` = ``"module:callable"`` returning the nn.Module."""
    if not os.path.isfile(path):
        raise runtime(InputError(f"--identity-weights {path}: file not found"))
    if arch:
        mod_name, _, attr = arch.partition(":")
        try:
            factory = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError, ValueError) as e:
            raise InputError(f"--identity-arch {arch}: cannot import ({e})") from None
        net = factory()
        try:
            net.load_state_dict(_load_state(path))
        except RuntimeError as e:
            raise InputError(f"--identity-weights {path}: does not fit {arch} "
                             f"({str(e).strip().splitlines()[0][:160]})") from None
    else:
        try:
            net = torch.jit.load(path, map_location="cpu")
        except Exception:
            raise InputError(f"--identity-weights {path}: not a TorchScript file; for a state dict also give "
                             "--identity-arch module:callable") from None
    if size < 16:
        raise InputError(f"--identity-size {size}: must be >= 16")
    return Identity(net, size).to(device)
