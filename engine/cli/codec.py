"""`hfd compress`, `hfd decompress`, `hfd info` and `hfd model`: the codec from a shell.

The engine (and with it torch) is imported only by the commands that need weights, so
`hfd --help` and `hfd info` answer at once."""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from engine.codec.bitstream import unpack
from engine.codec.images import atomic_write_bytes, load_image, save_png
from engine.errors import HfdError, SettingsError
from engine.settings import DECODER_SETTINGS, DEFAULT_DECODER

if TYPE_CHECKING:
    from engine.api import DecodeSettings, Engine
    from engine.progress import StepInfo

# The refinement options each decoder reads: the ODE solver is a flow knob; naming another
# decoder's option is refused rather than silently ignored.
REFINE_OPTIONS = tuple(dict.fromkeys(name for names in DECODER_SETTINGS.values() for name in names))


def register(subparsers: argparse._SubParsersAction) -> None:
    compress = subparsers.add_parser(
        "compress", help="encode an image to a .hfd file",
        description="Encode IMAGE to OUT.hfd at a target size (--bpp) or a raw rate (--rate). Transparent "
                    "images are composited over white; grayscale images are marked gray and decode to gray.")
    compress.add_argument("image", metavar="IMAGE", type=Path, help="any image Pillow reads")
    compress.add_argument("output", metavar="OUT.hfd", type=Path, help="where to write the .hfd file")
    target = compress.add_mutually_exclusive_group(required=True)
    target.add_argument("--bpp", type=float, metavar="B",
                        help="target bits per pixel, counting every byte of the file; the result lands at or "
                             "below it")
    target.add_argument("--rate", type=float, metavar="R", help="raw rate control in [0, 1] (1 = most bits)")
    add_optimise_option(compress)
    add_engine_options(compress)
    compress.set_defaults(run=compress_command)

    decompress = subparsers.add_parser(
        "decompress", help="decode a .hfd file to a PNG",
        description="Decode IN.hfd to OUT.png. The bits fix the autoencoder reconstruction; the decoder "
                    "options only change how detail is synthesised on top of it.",
        epilog="Options left unset take the loaded weights' defaults for the chosen decoder; `hfd model` "
               "lists them. --solver applies to the flow only, and no refinement option to --decoder ae.")
    decompress.add_argument("input", metavar="IN.hfd", type=Path)
    decompress.add_argument("output", metavar="OUT.png", type=Path)
    decompress.add_argument("--decoder", choices=("ae", "diffusion", "flow"), default=DEFAULT_DECODER,
                            help=f"ae: autoencoder only; diffusion or flow: refined (default: {DEFAULT_DECODER})")
    decompress.add_argument("--steps", type=int, metavar="N", help="sampler steps")
    decompress.add_argument("--shift", type=float, metavar="S",
                            help="logSNR shift, + means less noise: of the diffusion schedule (within the trained "
                                 "range) or of the flow's step times (`hfd model` shows both ranges)")
    decompress.add_argument("--noise", type=float, metavar="G",
                            help="sampler noise: 0 = deterministic (diffusion: DDIM, flow: the ODE) .. 1 = fresh noise each step "
                                 "(diffusion: ancestral DDPM, flow: start noise redrawn)")
    decompress.add_argument("--seed", type=int, metavar="K", help="random seed of the sampler")
    decompress.add_argument("--realism", type=float, metavar="R",
                            help="0 = autoencoder output .. 1 = fully refined (linear blend); default: the "
                                 "weights' realism for the rate the file was coded at (`hfd model` shows it)")
    decompress.add_argument("--solver", choices=("euler", "heun"), help="flow: ODE solver")
    add_engine_options(decompress)
    decompress.set_defaults(run=decompress_command)

    info = subparsers.add_parser("info", help="describe a .hfd file (no weights needed)")
    info.add_argument("input", metavar="IN.hfd", type=Path)
    info.set_defaults(run=info_command)

    model = subparsers.add_parser("model", help="describe the loaded weights and each decoder's defaults")
    add_engine_options(model)
    model.set_defaults(run=model_command)


def optimise_steps(text: str) -> int:
    try:
        steps = int(text)
    except ValueError:
        steps = -1
    if steps < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of steps ≥ 0, got {text!r}")
    return steps


def add_optimise_option(parser: argparse.ArgumentParser) -> None:
    """--optimise, for every command that encodes."""
    parser.add_argument("--optimise", type=optimise_steps, default=0, metavar="N",
                        help="refine the latents for this image by N gradient steps before coding (100 is a good "
                             "choice): smaller files at the same quality, any decoder reads them, but encoding "
                             "takes N steps of a forward and backward pass (with --bpp up to 3N, to fill the budget; default: 0, off)")


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """--device and --weights, for every command that loads an Engine."""
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where to run the models (default: auto = CUDA when available)")
    parser.add_argument("--weights", type=Path, metavar="DIR",
                        help="weights folder (default: $HFD_WEIGHTS, else the shipped assets/weights)")


def open_engine(args: argparse.Namespace) -> Engine:
    from engine.api import Engine

    return Engine(weights_dir=args.weights, device=args.device)


def check_output(source: Path, output: Path) -> None:
    """Refuse, before any work, an output that cannot be written or that is the input itself
    (the same path, or another name for the same file): writing it would destroy the input."""
    if output.is_dir():
        raise HfdError(f"{output} is a folder: name the file to write")
    if not output.parent.is_dir():
        raise HfdError(f"cannot write {output}: the folder {output.parent} does not exist")
    same = output.resolve() == source.resolve()
    if not same and output.exists() and source.exists():
        same = os.path.samefile(source, output)
    if same:
        raise HfdError(f"{output} is the input file: writing it would destroy the input; choose another path")


def check_target(args: argparse.Namespace) -> None:
    if args.bpp is not None and not (math.isfinite(args.bpp) and args.bpp > 0):
        raise SettingsError(f"--bpp must be a positive number, got {args.bpp:g}")
    if args.rate is not None and not 0.0 <= args.rate <= 1.0:
        raise SettingsError(f"--rate must be in [0, 1], got {args.rate:g}")


def compress_command(args: argparse.Namespace) -> None:
    check_output(args.image, args.output)
    check_target(args)
    image = load_image(args.image)
    engine = open_engine(args)
    encoded = engine.encode(image.rgb, rate=args.rate, bpp=args.bpp, colour=image.colour,
                            optimise_steps=args.optimise, on_optimise_step=print_optimise_step if args.optimise else None)
    atomic_write_bytes(args.output, encoded.data)
    target = f", target {args.bpp:g}" if args.bpp is not None else ""
    print(f"{args.output}: {encoded.nbytes} bytes, {encoded.bpp:.4f} bpp{target} "
          f"({encoded.width}×{encoded.height} {image.colour}, rate {encoded.rate:.4f})")


def decompress_command(args: argparse.Namespace) -> None:
    check_output(args.input, args.output)
    data = read_file(args.input)
    header, _ = unpack(data)  # a broken file fails here, before any weights load
    overrides = {name: getattr(args, name) for name in REFINE_OPTIONS if getattr(args, name) is not None}
    unused = [name for name in overrides if name not in DECODER_SETTINGS[args.decoder]]
    if unused:
        raise SettingsError(f"--{unused[0]} has no effect with --decoder {args.decoder}")
    engine = open_engine(args)
    if args.decoder == "ae":
        post_filtered = ", post-filtered" if engine.post_filter is not None else ""
        rgb, how = engine.decode_ae(data), f"autoencoder only{post_filtered}"
    else:
        # the default realism follows the file's rate: resolved here so the summary names it
        settings = engine.settings_for(args.decoder, header.rate, **overrides)
        rgb, how = engine.decode(data, settings, on_step=print_step), describe(settings)
    save_png(args.output, rgb, colour=header.colour)
    print(f"{args.output}: {header.width}×{header.height} {header.colour} PNG ({how})")


def info_command(args: argparse.Namespace) -> None:
    data = read_file(args.input)
    header, segments = unpack(data)
    rows = [("file", str(args.input)),
            ("format", f".hfd v{header.format_version}"),
            ("image", f"{header.width}×{header.height}, {header.colour}"),
            ("size", f"{len(data)} bytes, {len(data) * 8 / header.pixels:.4f} bpp"),
            ("model", f"{header.model_id} (weights {header.weights_hash})"),
            ("rate", f"{header.rate:.4f}"),
            ("payload", f"{len(segments)} segments, {sum(map(len, segments))} bytes")]
    print_rows(rows)


def model_command(args: argparse.Namespace) -> None:
    engine = open_engine(args)
    info = engine.info
    rows = [("model", f"{info.model_id} (weights {info.weights_hash})"),
            ("decoders", ", ".join(info.decoders)),
            ("rate range", f"{info.rate_range[0]:g} .. {info.rate_range[1]:g}"),
            ("bpp range", f"{info.bpp_range[0]:g} .. {info.bpp_range[1]:g} (typical on photos)"),
            *((f"{kind} shift range", f"{low:g} .. {high:g}") for kind, (low, high) in info.shift_ranges.items())]
    if info.flow_sigma is not None:
        start = "post_filter(x_ae)" if info.refines_post_filtered("flow") else "x_ae"
        rows.append(("flow start noise", f"{start} + σ·ε in [-1, 1], σ = {info.flow_sigma.describe()}"))
    for name, settings in info.defaults.items():
        if name == "ae":
            continue
        rows.append((f"{name} refines", info.refines_text(name)))
        schedule = info.realism.get(name)
        if settings.realism is None and schedule is not None and schedule.varies:
            rows += [(f"{name} defaults", describe(settings)),
                     (f"{name} realism", f"by the file's rate: {schedule.describe()}")]
        else:
            rows.append((f"{name} defaults", describe(info.resolve(settings, 0.0))))  # one realism for all
    print_rows(rows)


def describe(settings: DecodeSettings) -> str:
    """The refinement settings its decoder reads, as they would be typed on the command line; a
    default realism (None, which follows the file's rate) is left out."""
    return " ".join(f"--{name} {getattr(settings, name)}" for name in DECODER_SETTINGS[settings.decoder]
                    if getattr(settings, name) is not None)


def print_step(step: StepInfo) -> None:
    print(f"step {step.index}/{step.total}  {step.elapsed_s:.1f} s", file=sys.stderr, flush=True)


def print_optimise_step(done: int, total: int) -> None:
    if done % 10 == 0 or done == total:
        print(f"optimising latents: step {done}/{total}", file=sys.stderr, flush=True)


def print_rows(rows: list[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise HfdError(f"cannot read {path}: {exc.strerror or exc}") from exc
