"""Time one decoder step (one network evaluation through the tiler, as ``refine`` runs it)
at 768×512 for the default UNet: CPU fp32, fp32 + channels_last, bf16 autocast +
channels_last, and CUDA bf16 when a GPU is present.

    python benchmarks/bench_decoder_step.py [--width 768 --height 512 --repeats 3]"""
from __future__ import annotations

import argparse
import time

import torch

from engine.score_decoder import DEFAULT_TILE, network_call
from engine.tiling import tiled
from engine.unet import ConditionalUNet, UNetConfig


def channels_last_fp32(net: ConditionalUNet):
    """fp32 with channels_last: the middle column of the table."""
    net.to(memory_format=torch.channels_last)
    plain = network_call(net, torch.device("cpu"), fast=False)
    return lambda z, c, level: plain(z.contiguous(memory_format=torch.channels_last),
                                     c.contiguous(memory_format=torch.channels_last), level)


def time_step(fn, z: torch.Tensor, cond: torch.Tensor, repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call."""
    level = torch.ones(1, device=z.device)
    best = float("inf")
    with torch.inference_mode():
        for i in range(repeats + 1):
            if z.is_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn(z, cond, level)
            if z.is_cuda:
                torch.cuda.synchronize()
            if i:
                best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    config = UNetConfig()
    params = sum(p.numel() for p in ConditionalUNet(config).parameters()) / 1e6
    print(f"UNet {config.to_dict()}  {params:.2f} M parameters, "
          f"{args.width}×{args.height}, {torch.get_num_threads()} CPU threads")
    print(f"{'device':6} {'precision':24} {'whole image':>12} {f'tiles {DEFAULT_TILE}':>12}")

    runs = [("cpu", "fp32", lambda net: network_call(net, torch.device("cpu"), fast=False)),
            ("cpu", "fp32 channels_last", channels_last_fp32),
            ("cpu", "bf16 channels_last", lambda net: network_call(net, torch.device("cpu"), fast=True))]
    if torch.cuda.is_available():
        runs.append(("cuda", "bf16 channels_last", lambda net: network_call(net, torch.device("cuda"), fast=True)))
    for device, precision, make in runs:
        net = ConditionalUNet(config).to(device).eval()
        fn = make(net)
        z = torch.randn(1, 3, args.height, args.width, device=device)
        cond = torch.rand(1, 3, args.height, args.width, device=device)
        whole = tiled(fn, tile=max(args.width, args.height) + 16, multiple=config.size_multiple)
        tiles = tiled(fn, tile=DEFAULT_TILE, overlap=DEFAULT_TILE // 8, multiple=config.size_multiple)
        print(f"{device:6} {precision:24} {time_step(whole, z, cond, args.repeats):11.3f}s "
              f"{time_step(tiles, z, cond, args.repeats):11.3f}s", flush=True)


if __name__ == "__main__":
    main()
