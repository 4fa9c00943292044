"""Time one decoder step (one network evaluation, as ``refine`` runs it on an image up to one
768² tile) at 768×512 for the default UNet: CPU fp32, fp32 + channels_last, bf16 autocast +
channels_last, and CUDA bf16 when a GPU is present.

    python benchmarks/bench_decoder_step.py [--width 768 --height 512 --repeats 3]"""
from __future__ import annotations

import argparse
import time

import torch

from engine.decoders.score_decoder import network_call, padded
from engine.decoders.unet import ConditionalUNet, UNetConfig


def channels_last_fp32(net: ConditionalUNet):
    """fp32 with channels_last: the middle column of the table."""
    net.to(memory_format=torch.channels_last)
    plain = network_call(net, torch.device("cpu"), fast=False)
    return lambda z, c, level: plain(z.contiguous(memory_format=torch.channels_last),
                                     c.contiguous(memory_format=torch.channels_last), level)


def time_step(fn, z: torch.Tensor, cond: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Best wall time and best process CPU time (all threads) of ``repeats`` calls after a
    warm-up call. On a busy machine run with --threads 1: one thread's CPU time is then
    the steady figure (with more threads, waiting threads spin and inflate it)."""
    level = torch.ones(1, device=z.device)
    wall = cpu = float("inf")
    with torch.inference_mode():
        for i in range(repeats + 1):
            if z.is_cuda:
                torch.cuda.synchronize()
            start, start_cpu = time.perf_counter(), time.process_time()
            fn(z, cond, level)
            if z.is_cuda:
                torch.cuda.synchronize()
            if i:
                wall = min(wall, time.perf_counter() - start)
                cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    config = UNetConfig()
    params = sum(p.numel() for p in ConditionalUNet(config).parameters()) / 1e6
    print(f"UNet {config.to_dict()}  {params:.2f} M parameters, "
          f"{args.width}×{args.height}, {torch.get_num_threads()} CPU threads")
    print(f"{'device':6} {'precision':20} {'wall':>8} {'cpu':>8}")

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
        wall, cpu = time_step(padded(fn, config.size_multiple), z, cond, args.repeats)
        print(f"{device:6} {precision:20} {wall:7.3f}s {cpu:7.3f}s", flush=True)


if __name__ == "__main__":
    main()
