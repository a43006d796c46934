"""``RelightPipeline``: a diffusers pipeline that relights a portrait under a target env map.

Components: ``unet`` (widened ``UNet2DConditionModel``), ``vae``
(``AutoencoderKL`` or :class:`~relight.components.PixelCodec`),
``text_encoder`` (:class:`~relight.components.CaptionEncoder` or CLIP),
optional ``tokenizer``, ``scheduler``. Save with ``save_pretrained`` and load
with ``RelightPipeline.from_pretrained`` (always through this class: plain
``DiffusionPipeline.from_pretrained`` cannot find it).

Sampling uses the paper's guidance (:mod:`relight.guidance`); the branches
run as one batched UNet call per step.
"""

from __future__ import annotations

import torch
from diffusers import (DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler,
                       EulerDiscreteScheduler)

from relight import guidance
from relight.model import condition_latents, decode_latents, encode_text, env_vector, ratio_to_latent

SCHEDULERS = {
    "ddim": DDIMScheduler,
    "euler": EulerDiscreteScheduler,
    "dpm++": DPMSolverMultistepScheduler,
}


def scheduler_by_name(name: str, config) -> object:
    if name not in SCHEDULERS:
        raise ValueError(f"scheduler {name!r}: choose one of {', '.join(SCHEDULERS)}")
    kw = {"algorithm_type": "dpmsolver++"} if name == "dpm++" else {}
    return SCHEDULERS[name].from_config(config, **kw)


class RelightPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "text_encoder->unet->vae"
    _optional_components = ["tokenizer"]

    def __init__(self, unet, vae, text_encoder, scheduler, tokenizer=None, output: str = "image",
                 default_steps: int = 20, default_image_guidance: float = 3.0):
        super().__init__()
        self.register_modules(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                              scheduler=scheduler)
        # kept in model_index.json: model.output ("ratio" turns each branch's output into x0 over the
        # portrait) and the sampling the model was trained and validated with (None arguments use them)
        self.register_to_config(output=output, default_steps=int(default_steps),
                                default_image_guidance=float(default_image_guidance))

    @property
    def latent_channels(self) -> int:
        return self.unet.config.out_channels

    @property
    def n_conditions(self) -> int:
        return self.unet.config.in_channels // self.latent_channels - 1

    @torch.no_grad()
    def __call__(self, portrait: torch.Tensor, env: torch.Tensor, env_hdr: torch.Tensor | None = None,
                 prompt: str | list[str] | None = None, num_inference_steps: int | None = None,
                 image_guidance_scale: float | None = None, guidance_scale: float = 2.0,
                 generator: torch.Generator | None = None, batched_branches: bool = True,
                 output_type: str = "pt", latents: torch.Tensor | None = None):
        """Relight ``portrait`` (B, 3, H, W) in [0, 1] under ``env`` (B, 3, h, w) LDR in [0, 1].

        ``prompt`` None: two-branch guidance (portrait scale only). Returns
        (B, 3, H, W) in [0, 1] (``output_type="pt"``), or a list of PIL images ("pil").
        ``latents``: the initial noise (B, C, h, w) instead of drawing it from ``generator``
        (e.g. one noise for every frame of a turning light).
        """
        device = self._execution_device
        dtype = self.unet.dtype
        if num_inference_steps is None:
            num_inference_steps = self.config.default_steps
        if image_guidance_scale is None:
            image_guidance_scale = self.config.default_image_guidance
        portrait = portrait.to(device, torch.float32)
        env = env.to(device, torch.float32)
        b = portrait.shape[0]
        conds = condition_latents(self.vae, portrait, env,
                                  None if env_hdr is None else env_hdr.to(device, torch.float32),
                                  use_env_hdr=self.n_conditions == 3)
        conds = [c.to(dtype) for c in conds]
        c_img, c_rest = conds[0], conds[1:]
        zero = torch.zeros_like(c_img)

        use_text = prompt is not None
        branches = guidance.BRANCHES_WITH_TEXT if use_text else guidance.BRANCHES_NO_TEXT
        if not use_text and image_guidance_scale == 1.0:  # e_env + 1 (e_portrait - e_env): one branch, half the cost
            branches = branches[1:]
        empty = encode_text(self.text_encoder, self.tokenizer, [""] * b, device).to(dtype)
        if use_text:
            prompts = [prompt] * b if isinstance(prompt, str) else list(prompt)
            text = encode_text(self.text_encoder, self.tokenizer, prompts, device).to(dtype)
        cond_in = torch.cat([torch.cat([c_img if keep_i else zero, *c_rest], 1) for keep_i, _ in branches])
        hidden = torch.cat([text if keep_t else empty for _, keep_t in branches])

        extra = {}
        if self.unet.config.class_embed_type == "projection":  # model.env_vector: the env in every block
            vec = env_vector(env, None if env_hdr is None or self.n_conditions < 3 else env_hdr.to(device, torch.float32))
            extra["class_labels"] = torch.cat([vec] * len(branches)).to(dtype)
        ratio = getattr(self.config, "output", "image") == "ratio"

        h, w = c_img.shape[-2:]
        if latents is None:
            latents = torch.randn((b, self.latent_channels, h, w), generator=generator,
                                  device="cpu", dtype=torch.float32)
        elif latents.shape != (b, self.latent_channels, h, w):
            raise ValueError(f"latents shape {tuple(latents.shape)}, expected {(b, self.latent_channels, h, w)}")
        latents = latents.to(device, dtype)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        latents = latents * self.scheduler.init_noise_sigma
        n = len(branches)
        for t in self.progress_bar(self.scheduler.timesteps):
            x = self.scheduler.scale_model_input(latents, t)
            if batched_branches:
                inp = torch.cat([torch.cat([x] * n), cond_in], 1)
                eps = self.unet(inp, t, encoder_hidden_states=hidden, **extra).sample.chunk(n)
            else:
                eps = [self.unet(torch.cat([x, cond_in[i * b:(i + 1) * b]], 1), t,
                                 encoder_hidden_states=hidden[i * b:(i + 1) * b],
                                 **{k: v[i * b:(i + 1) * b] for k, v in extra.items()}).sample for i in range(n)]
            if ratio:  # every branch relights the same portrait, seen or not: guidance acts on the gain's x0
                eps = [ratio_to_latent(e, c_img).to(dtype) for e in eps]
            e = eps[0] if len(eps) == 1 else guidance.combine(eps[0], eps[1], eps[2] if use_text else None,
                                                              image_guidance_scale, guidance_scale)
            latents = self.scheduler.step(e, t, latents, generator=generator).prev_sample
        images = decode_latents(self.vae, latents)
        if output_type == "pil":
            from PIL import Image

            arr = (images.permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype("uint8")
            return [Image.fromarray(a) for a in arr]
        return images
