"""`hfd train autoencoder|diffusion|flow|postfilter`: the training stages from the command line.

Each run resumes from ``--out`` if a checkpoint is there and exports EMA weights
(``<out>/<stage>.safetensors``, bf16) at every checkpoint; copy them to assets/weights to ship."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import HfdError, SettingsError

if TYPE_CHECKING:
    from engine.decoders.flow import StartNoise

STAGES = ("autoencoder", "diffusion", "flow", "postfilter")


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show: a None default means the
    option's help says what is used instead (e.g. "default 1 for a pack, else 2")."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train the autoencoder or a score-based decoder",
                              description=__doc__, formatter_class=_DefaultsHelp)
    p.add_argument("stage", choices=STAGES)
    p.add_argument("--data", type=Path, default=Path("data/photos"),
                   help="folder of photos (with train/ and val/ subfolders, or split by file-name hash)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/<stage>)")
    p.add_argument("--steps", type=int, default=20_000, help="optimiser steps; the learning rate anneals over them")
    p.add_argument("--batch", type=int, default=8, help="crops per step (per process under torchrun)")
    p.add_argument("--crop", type=int, default=256, help="crop side, px")
    p.add_argument("--lr", type=float, default=None, help="default 2e-4 (autoencoder), 1e-4 (decoders)")
    p.add_argument("--seed", type=int, default=0, help="seeds the crops and the training noise")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: CUDA when torch sees it")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    p.add_argument("--downscale", type=float, default=None,
                   help="downscale factor applied to every photo first (sources are lossy: keep ≥ 2); "
                        "default 1 for a folder from `hfd data pack` (already ≥2× downscaled), else 2")
    p.add_argument("--no-bf16", dest="bf16", action="store_false", help="train in fp32")
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="stop after this long (then checkpoint and export); the learning rate anneals "
                        "over the steps or the time, whichever ends first")
    p.add_argument("--lambda-range", type=_lambda_range, default=None, metavar="LO,HI",
                   help="autoencoder: λ at rate 0 and rate 1 (bpp + λ·255²·MSE), also when continuing "
                        "from --init; default the model's own (0.0006,0.05 for a new one)")
    p.add_argument("--extend", type=_extend, default=(0, 0), metavar="LOW,HIGH",
                   help="autoencoder: add LOW gain levels below and HIGH above the rate range of --init "
                        "(one λ step each) and train only those, to widen the bitrate range; every other "
                        "weight stays as it was (old rate r becomes (LOW + r·(L−1)) / (L−1+LOW+HIGH) for "
                        "L old levels)")
    p.add_argument("--synthesis-only", action="store_true",
                   help="autoencoder: fine-tune only the decoder side of --init (g_s and the inverse gains) "
                        "on hard-quantised latents; the encoder and entropy model stay frozen, so every "
                        "file keeps its bytes and only the reconstruction changes")
    p.add_argument("--add-context", action="store_true",
                   help="autoencoder: add a checkerboard context model to --init and train it jointly with "
                        "the transforms (continue such weights with --init alone)")
    p.add_argument("--autoencoder", type=Path, default=None,
                   help="frozen autoencoder weights for the decoder stages (default: the shipped ones)")
    p.add_argument("--init", type=Path, default=None,
                   help="weights to start from when --out has no checkpoint (e.g. assets/weights/flow.safetensors; "
                        "the post-filter starts from a post-filter or a rate-conditioned flow decoder)")
    p.add_argument("--base", type=int, default=None, help="decoder UNet base width (default: UNetConfig's)")
    p.add_argument("--condition-on-rate", action="store_true",
                   help="decoders: tell the network the rate each x_ae was coded at (a network from --init "
                        "without it gains it, starting out unchanged)")
    p.add_argument("--flow-sigma", type=_start_noise, default=None, metavar="S or S0,S1",
                   help="flow: start-noise σ in the [-1, 1] domain (x_0 = x_ae + σ·ε), one for every rate or "
                        "S0 at rate 0 to S1 at rate 1 (log-linear; needs a rate-conditioned network); "
                        "default that of --init, else engine.flow's DEFAULT_FLOW_SIGMA. Stored with the "
                        "weights, and the sampler uses it")
    p.add_argument("--post-filtered", nargs="?", type=Path, const=True, default=None, metavar="POSTFILTER",
                   help="decoders: train on the autoencoder's post-filtered decode (what the Autoencoder pane "
                        "shows) instead of g_s's output, with the shipped post-filter or the one given; "
                        "weights from --init trained on g_s's output move over. Resuming such a run, or "
                        "continuing such weights, needs it again")
    p.set_defaults(run=run)


def _lambda_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (two numbers), got {text!r}") from None
    if not 0 < lo < hi:
        raise argparse.ArgumentTypeError(f"need 0 < LO < HI, got {lo:g},{hi:g}")
    return lo, hi


def _start_noise(text: str) -> StartNoise:
    from engine.decoders.flow import (
        StartNoise,  # torch, but only when the option is given
    )

    try:
        return StartNoise.parse(text)
    except SettingsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _extend(text: str) -> tuple[int, int]:
    try:
        low, high = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (two whole numbers), got {text!r}") from None
    if low < 0 or high < 0 or low + high == 0:
        raise argparse.ArgumentTypeError(f"need LOW, HIGH ≥ 0 and at least one new level, got {low},{high}")
    return low, high


def run(args: argparse.Namespace) -> int:
    from engine.api import default_weights_dir
    from engine.data.pack import is_pack, training_downscale
    from engine.data.photos import PhotoSet, split_photos
    from engine.training.loop import TrainConfig

    if any(args.extend) and (args.stage != "autoencoder" or args.init is None or args.lambda_range):
        raise HfdError("--extend needs the autoencoder stage and --init, and keeps the λ range of --init")
    if args.synthesis_only and (args.stage != "autoencoder" or args.init is None or args.lambda_range
                                or any(args.extend)):
        raise HfdError("--synthesis-only needs the autoencoder stage and --init, and no --extend or --lambda-range")
    if args.condition_on_rate and args.stage not in ("diffusion", "flow"):
        raise HfdError("--condition-on-rate is for the diffusion and flow stages (the post-filter always has it)")
    if args.post_filtered is not None and args.stage not in ("diffusion", "flow"):
        raise HfdError("--post-filtered is for the diffusion and flow stages")
    if args.base and args.stage not in ("diffusion", "flow"):
        raise HfdError("--base is for the diffusion and flow stages")
    if args.flow_sigma is not None and args.stage != "flow":
        raise HfdError("--flow-sigma is for the flow stage")
    if args.add_context and (args.stage != "autoencoder" or args.init is None or args.lambda_range
                             or any(args.extend) or args.synthesis_only):
        raise HfdError("--add-context needs the autoencoder stage and --init, and no --extend, "
                       "--lambda-range or --synthesis-only")
    train_paths, val_paths = split_photos(args.data)
    if not train_paths:
        raise HfdError(f"no training images found in {args.data} (fetch some with `hfd data fetch DIR`)")
    downscale = args.downscale if args.downscale is not None else training_downscale(args.data)
    kind = "a pack from `hfd data pack`" if is_pack(args.data) else "photos"
    print(f"{len(train_paths)} training photos, {len(val_paths)} validation photos ({kind}, "
          f"downscaled {downscale:g}× for training); loading…")
    train = PhotoSet.load(train_paths, downscale, args.crop)
    val = PhotoSet.load(val_paths, downscale, args.crop)
    config = TrainConfig(out_dir=args.out or Path("runs") / args.stage, steps=args.steps,
                         lr=args.lr or (2e-4 if args.stage == "autoencoder" else 1e-4), batch=args.batch,
                         crop=args.crop, seed=args.seed, device=args.device, bf16=args.bf16,
                         threads=args.threads, checkpoint_every=args.checkpoint_every,
                         time_limit=args.time_limit)
    if args.stage == "autoencoder":
        from engine.training.autoencoder import train_autoencoder

        path = train_autoencoder(train, val, config, init=args.init, lambda_range=args.lambda_range,
                                 extend=args.extend, synthesis_only=args.synthesis_only,
                                 add_context=args.add_context)
    elif args.stage == "postfilter":
        from engine.training.decoders import train_post_filter

        path = train_post_filter(args.autoencoder or default_weights_dir() / "autoencoder.safetensors",
                                 train, val, config, init=args.init)
    else:
        from engine.decoders.unet import UNetConfig
        from engine.training.decoders import train_decoder

        unet = UNetConfig(base=args.base) if args.base else UNetConfig()
        ae_path = args.autoencoder or default_weights_dir() / "autoencoder.safetensors"
        post_filter = args.post_filtered
        if post_filter is True:
            post_filter = default_weights_dir() / "postfilter.safetensors"
        path = train_decoder(args.stage, ae_path, train, val, config, unet, init=args.init,
                             condition_on_rate=args.condition_on_rate, flow_sigma=args.flow_sigma,
                             post_filter_path=post_filter)
    print(f"weights: {path}")
    return 0
