"""Seconds per relit image, and the three guidance branches batched into one UNet call vs run one by one.

    python benchmarks/relight_inference.py                     # tiny model (relight's CPU config), 64 px, 20 steps
    python benchmarks/relight_inference.py --threads 1 2       # per torch thread count
    python benchmarks/relight_inference.py --sd15              # SD-1.5-shaped UNet + VAE at 512 px (a GPU job)
    python benchmarks/relight_inference.py --sd15 --size 128 --steps 2   # the same shapes, small enough for a CPU

Both modes run in the same process on the same weights, interleaved
(batched, one-by-one, batched, ...) so that a machine whose load changes
during the run (shared cores) affects both alike; the median of
``--repeats`` is reported. Weights are random (speed does not depend on
them): the tiny model is ``relight.model.build`` with the hashed text
encoder, so a prompt gives all three branches; ``--sd15`` builds a
UNet2DConditionModel and AutoencoderKL with Stable Diffusion 1.5's shapes
(12 input channels after widening, cross-attention 768), nothing downloaded.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402

from relight.components import CaptionEncoder  # noqa: E402
from relight.model import ModelConfig, build, make_scheduler  # noqa: E402
from relight.pipeline import RelightPipeline, scheduler_by_name  # noqa: E402


def tiny_pipeline() -> RelightPipeline:
    m = build(ModelConfig(text="hashed"))
    return RelightPipeline(m.unet, m.vae, m.text_encoder, scheduler_by_name("ddim", m.scheduler.config))


def sd15_pipeline() -> RelightPipeline:
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=12, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=768, attention_head_dim=8)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=512,
                        block_out_channels=(128, 256, 512, 512),
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    text = CaptionEncoder(dim=768, vocab_size=4096)
    return RelightPipeline(unet, vae, text, scheduler_by_name("ddim", make_scheduler(ModelConfig()).config))


def time_call(pipe, b: int, size: int, steps: int, batched: bool, device) -> float:
    portrait, env = torch.rand(b, 3, size, size), torch.rand(b, 3, size, size)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    pipe(portrait, env, prompt="a person", num_inference_steps=steps, batched_branches=batched,
         generator=torch.Generator().manual_seed(0))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sd15", action="store_true", help="SD-1.5-shaped UNet + VAE instead of the tiny model")
    p.add_argument("--size", type=int, help="image side (default 64 tiny, 512 sd15)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="images per pipeline call")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, nargs="+", help="torch CPU thread counts to try (default: torch's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--fp16", action="store_true", help="half precision (CUDA only; default on for --sd15 on CUDA)")
    a = p.parse_args()
    device = torch.device("cuda" if (a.device == "auto" and torch.cuda.is_available()) else
                          ("cpu" if a.device == "auto" else a.device))
    size = a.size or (512 if a.sd15 else 64)
    t0 = time.perf_counter()
    pipe = sd15_pipeline() if a.sd15 else tiny_pipeline()
    if device.type == "cuda" and (a.fp16 or a.sd15):
        pipe.to(torch.float16)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    n_params = sum(p.numel() for p in pipe.unet.parameters()) / 1e6
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"# {'SD-1.5-shaped' if a.sd15 else 'tiny'} UNet ({n_params:.1f} M params), {size} px, {a.steps} DDIM steps, "
          f"3 branches (portrait, env, text); built in {time.perf_counter() - t0:.1f} s")
    print(f"# {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else platform.processor() or 'cpu'}), "
          f"torch {torch.__version__}, {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| threads | batch | batched s/image | one-by-one s/image | one-by-one / batched |")
    print("|---|---|---|---|---|")
    for threads in a.threads or [torch.get_num_threads()]:
        torch.set_num_threads(threads)
        for b in a.batch:
            time_call(pipe, b, size, min(2, a.steps), True, device)  # warm-up (allocator, kernels)
            times = {True: [], False: []}
            for _ in range(a.repeats):
                for batched in (True, False):
                    times[batched].append(time_call(pipe, b, size, a.steps, batched, device) / b)
            tb, ts = statistics.median(times[True]), statistics.median(times[False])
            print(f"| {threads} | {b} | {tb:.3f} | {ts:.3f} | {ts / tb:.2f} |", flush=True)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"# load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
