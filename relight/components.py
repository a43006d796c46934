"""Custom diffusers components of a relight model, at a frozen import path.

``save_pretrained`` records each component as ``[module path, class name]``
in ``model_index.json``; moving or renaming these classes breaks every saved
checkpoint, so they live here and nowhere else.

* :class:`PixelCodec` stands in for a VAE in pixel-space models (the tiny CPU
  configuration): "latents" are the image scaled to [-1, 1].
* :class:`CaptionEncoder` is the text module when no CLIP checkpoint is given:
  a learned null token (``vocab_size=0``, text ignored) or a small hashed
  bag-of-words encoder over the captions relight generates from metadata.
"""

from __future__ import annotations

import re
import zlib

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

_WORD = re.compile(r"[a-z0-9]+")


class PixelCodec(ModelMixin, ConfigMixin):
    """Identity "autoencoder": images in [-1, 1] are their own latents."""

    @register_to_config
    def __init__(self, channels: int = 3):
        super().__init__()
        # ModelMixin wants at least one tensor to know its device and dtype.
        self.register_buffer("_anchor", torch.zeros(1), persistent=True)

    @property
    def latent_channels(self) -> int:
        return self.config.channels

    @property
    def downsample(self) -> int:
        return 1

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z


class CaptionEncoder(ModelMixin, ConfigMixin):
    """Text -> ``encoder_hidden_states`` (B, L, dim) without any pretrained weights.

    ``vocab_size == 0``: a learned null token, shape (B, 1, dim), whatever the
    text (the default: the model is conditioned by portrait and env map only).
    ``vocab_size > 0``: words are hashed (crc32, stable across processes) into
    ``vocab_size`` buckets, embedded, given positions, and padded to
    ``max_tokens`` with a learned pad vector; the empty caption (the dropped
    text condition) is all pads.
    """

    @register_to_config
    def __init__(self, dim: int = 32, vocab_size: int = 0, max_tokens: int = 16):
        super().__init__()
        self.null = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        if vocab_size:
            self.embed = nn.Embedding(vocab_size, dim)
            nn.init.normal_(self.embed.weight, std=0.02)
            self.pos = nn.Parameter(torch.randn(1, max_tokens, dim) * 0.02)

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """(B, max_tokens) bucket ids, -1 for padding."""
        n, v = self.config.max_tokens, self.config.vocab_size
        ids = torch.full((len(texts), n), -1, dtype=torch.long)
        for b, text in enumerate(texts):
            words = _WORD.findall((text or "").lower())[:n]
            for i, w in enumerate(words):
                ids[b, i] = zlib.crc32(w.encode()) % v
        return ids

    def forward(self, texts: list[str]) -> torch.Tensor:
        b = len(texts)
        if not self.config.vocab_size:
            return self.null.expand(b, -1, -1)
        ids = self.tokenize(texts).to(self.null.device)
        pad = ids < 0
        emb = self.embed(ids.clamp(min=0)) + self.pos
        return torch.where(pad[..., None], self.null.expand_as(emb), emb)
