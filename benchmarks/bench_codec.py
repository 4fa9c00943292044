"""Time every component of encode and decode with the shipped weights, per image size and
precision, with peak memory, and compare the decoder step's achieved multiply-accumulates
per second with a plain matrix multiply measured in the same run.

    python benchmarks/bench_codec.py [--sizes 768x512,2048x1536] [--repeats 2] [--out benchmarks/results]

Writes a Markdown table and a JSON file named after the machine and date."""
from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from datetime import date
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from engine.api import Engine
from engine.codec.autoencoder import pad_to_stride
from engine.decoders.score_decoder import network_call


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    info = {"cpu": cpu, "cpu_threads": str(torch.get_num_threads()), "torch": torch.__version__,
            "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def best_time(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call."""
    best = float("inf")
    for i in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            best = min(best, time.perf_counter() - start)
    return best


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process high-water mark


def matmul_macs_per_s(device: torch.device, dtype: torch.dtype, repeats: int, n: int = 2048) -> float:
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    return n ** 3 / best_time(lambda: a @ b, repeats, device)


def bench(engine: Engine, width: int, height: int, fast: bool, repeats: int) -> dict[str, float]:
    device, ae = engine.device, engine.autoencoder
    engine._fast = fast  # the engine picks bf16 itself; the benchmark compares both
    rgb = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    x = pad_to_stride(torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(255)).to(device)
    if fast:
        x = x.contiguous(memory_format=torch.channels_last)
    row: dict[str, float] = {}
    with torch.inference_mode():
        with engine._autocast():
            y = ae.analyze(x)
            row["analysis_s"] = best_time(lambda: ae.analyze(x), repeats, device)
        latents = ae.code_latents(y, 0.5, (height, width))
        row["entropy_encode_s"] = best_time(lambda: ae.code_latents(y, 0.5, (height, width)), repeats, device)
        y_hat = ae.decode_latents(latents.segments, 0.5, (height, width)).to(device)
        row["entropy_decode_s"] = best_time(lambda: ae.decode_latents(latents.segments, 0.5, (height, width)),
                                            repeats, device)
        with engine._autocast():
            row["synthesis_s"] = best_time(lambda: ae.synthesize(y_hat), repeats, device)
    row["bpp"] = sum(map(len, latents.segments)) * 8 / (width * height)
    decoder = engine.decoder(engine.decoder_kinds[0]) if engine.decoder_kinds else None
    if decoder is not None:
        step = network_call(decoder.net.to(device), device, fast, rate=0.5)  # rate-conditioned nets need it
        z = torch.randn(1, 3, height - height % 16, width - width % 16, device=device)
        level = torch.ones(1, device=device)
        with torch.inference_mode():
            row["decoder_step_s"] = best_time(lambda: step(z, z, level), repeats, device)
            with FlopCounterMode(display=False) as counter:
                step(z, z, level)
        row["decoder_step_gmacs"] = counter.get_total_flops() / 2 / 1e9
        dtype = torch.bfloat16 if fast else torch.float32
        achieved = row["decoder_step_gmacs"] * 1e9 / row["decoder_step_s"]
        row["matmul_gmacs_per_s"] = matmul_macs_per_s(device, dtype, repeats) / 1e9
        row["step_vs_matmul"] = achieved / (row["matmul_gmacs_per_s"] * 1e9)
    row["peak_memory_mib"] = peak_memory_mib(device)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="768x512,2048x1536")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    engine = Engine(device=args.device)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    rows = []
    for width, height in sizes:
        for fast in (False, True):
            precision = "bf16 channels_last" if fast else "fp32"
            print(f"{engine.device.type} {width}×{height} {precision} …", flush=True)
            rows.append({"device": engine.device.type, "size": f"{width}x{height}", "precision": precision,
                         **bench(engine, width, height, fast, args.repeats)})
    info = machine()
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"codec-{engine.device.type}-{date.today().isoformat()}"
    (args.out / f"{stem}.json").write_text(json.dumps({"machine": info, "model": engine.model_id, "rows": rows},
                                                      indent=2))
    cols = ["size", "precision", "analysis_s", "entropy_encode_s", "entropy_decode_s", "synthesis_s",
            "decoder_step_s", "decoder_step_gmacs", "matmul_gmacs_per_s", "step_vs_matmul", "peak_memory_mib"]
    lines = [f"# Codec benchmark, {engine.device.type}, {date.today().isoformat()}", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()) + f"; model {engine.model_id}.", "",
             "Times are the best of the repeats after a warm-up; entropy coding always runs on the CPU; "
             "peak memory is the process high-water mark (CPU) or the CUDA allocator's peak; "
             "step_vs_matmul = the decoder step's achieved MAC/s ÷ a 2048² matmul's in the same precision.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:.3f}" if isinstance(r.get(c), float) else str(r.get(c, "–"))
                                       for c in cols) + " |")
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
