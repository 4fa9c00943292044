"""Stage 1: train the variable-rate autoencoder for bpp + λ(r)·255²·MSE with r ~ U(0, 1)
per crop, so every point of the rate range is trained, not just the gain levels.

``extend`` widens a trained model's bitrate range cheaply: new gain levels go below the lowest
and/or above the highest one and only their rows train (r ~ U over the rates they touch), so the
transforms, the entropy model and every rate between the old ends stay exactly as they were.

``synthesis_only`` fine-tunes the decoder side alone (g_s and the inverse gains) on the hard-
quantised latents of a trained model, the second phase of Guo et al. 2021's "soft then hard":
the encoder and the entropy model stay frozen, so every file keeps its exact bytes and only
the reconstruction improves.

``add_context`` puts a checkerboard context model (``context_model``) on a trained autoencoder
and trains it jointly with everything else: the context model alone, on frozen transforms,
saved almost nothing (the shipped latents leave little to predict from the anchors), so the
transforms must learn latents it can predict."""
from __future__ import annotations

import math
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from engine.codec.autoencoder import (
    GAIN_TABLES,
    AutoencoderConfig,
    HyperpriorAutoencoder,
    pad_to_stride,
)
from engine.data.photos import PhotoSet
from engine.errors import SettingsError
from engine.training.loop import TrainConfig, Trainer
from engine.weights import load_state, read_metadata, save_weights

VALIDATION_RATES = (0.0, 0.25, 0.5, 0.75, 1.0)


def unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def _draw_rates(n: int, device: torch.device, ends: tuple[float, float] | None) -> Tensor:
    """Rates uniform on [0, 1], or with ``ends`` = (a, b) uniform on [0, a] ∪ [1 − b, 1]."""
    rate = torch.rand(n, device=device)
    if ends is None:
        return rate
    low, high = ends
    u = rate * (low + high)
    return torch.where(u < low, u, 1 - (u - low))


def _bpp_and_mse(model: nn.Module, x: Tensor, rate: Tensor) -> tuple[Tensor, Tensor]:
    """Per-crop bits per pixel (noisy relaxation) and MSE of the reconstruction."""
    out = model(x, rate)
    bits = (-torch.log2(out["y_likelihood"]).sum((1, 2, 3)) - torch.log2(out["z_likelihood"]).sum((1, 2, 3)))
    return bits / (x.shape[-2] * x.shape[-1]), (out["x_hat"].float() - x).pow(2).mean((1, 2, 3))


def _metrics(bpp: Tensor, mse: Tensor) -> dict[str, float]:
    psnr = float((10 * torch.log10(1 / mse.detach().clamp_min(1e-10))).mean())
    return {"bpp": float(bpp.detach().mean()), "psnr": psnr}


def rd_loss(model: nn.Module, x: Tensor, ends: tuple[float, float] | None = None) -> tuple[Tensor, dict[str, float]]:
    """Rate-distortion loss at rates drawn uniformly from [0, 1], or with ``ends`` = (a, b)
    uniformly from [0, a] ∪ [1 − b, 1] (both in proportion to their lengths).

    Each crop's cost bpp + λ·255²·MSE is averaged in the log: λ spans five orders of magnitude
    across the rate range, so a plain mean lets the top rates' costs (~100× the middle's) set
    every shared weight; in the log a relative gain counts alike at every rate, as BD-rate
    counts it. Each crop's own optimum is unchanged."""
    rate = _draw_rates(x.shape[0], x.device, ends)
    bpp, mse = _bpp_and_mse(model, x, rate)
    loss = torch.log(bpp + unwrap(model).lmbda(rate) * 255 ** 2 * mse).mean()
    return loss, _metrics(bpp, mse)


def synthesis_loss(model: nn.Module, x: Tensor) -> tuple[Tensor, dict[str, float]]:
    """With the rate fixed by a frozen encoder only the distortion is left to train. Mean log
    MSE over crops at uniform random rates weighs a relative gain alike at every rate, as
    BD-rate does (λ-weighted MSE would let the highest rates drown out the rest)."""
    rate = _draw_rates(x.shape[0], x.device, None)
    bpp, mse = _bpp_and_mse(model, x, rate)
    return torch.log(mse.clamp_min(1e-10)).mean(), _metrics(bpp, mse)


@torch.no_grad()
def validate(ae: HyperpriorAutoencoder, images: list[np.ndarray], crop: int = 512) -> dict[str, float]:
    """Real-codec bpp (entropy-coded bytes) and PSNR on centre crops, per rate."""
    ae = ae.eval()
    device = next(ae.parameters()).device
    ae.update_tables()
    result: dict[str, float] = {}
    for rate in VALIDATION_RATES:
        bpps, psnrs = [], []
        for im in images:
            h, w = im.shape[:2]
            ch, cw = min(crop, h), min(crop, w)
            top, left = (h - ch) // 2, (w - cw) // 2
            x = torch.from_numpy(im[top:top + ch, left:left + cw]).permute(2, 0, 1)[None].float().div(255)
            xp = pad_to_stride(x).to(device)
            latents = ae.code_latents(ae.analyze(xp), rate, (ch, cw))
            y_hat = ae.decode_latents(latents.segments, rate, (ch, cw))
            x_hat = ae.synthesize(y_hat.to(device)).cpu()[..., :ch, :cw]
            x_hat = torch.round(x_hat * 255) / 255
            bpps.append(sum(map(len, latents.segments)) * 8 / (ch * cw))
            psnrs.append(10 * math.log10(1 / max(float((x_hat - x).pow(2).mean()), 1e-10)))
        result[f"bpp@{rate:g}"] = float(np.mean(bpps))
        result[f"psnr@{rate:g}"] = float(np.mean(psnrs))
    return result


def train_only_outer_levels(model: HyperpriorAutoencoder, low: int, high: int) -> tuple[float, float]:
    """Freeze everything but the lowest ``low`` and highest ``high`` rows of the gain tables;
    returns the lengths of the rate intervals at each end that those rows reach."""
    model.requires_grad_(False)
    levels = model.config.levels
    keep = torch.zeros(levels, 1)
    keep[:low], keep[levels - high:] = 1, 1
    for name in GAIN_TABLES:
        table = getattr(model, name).requires_grad_(True)
        # Zero gradients on the frozen rows: with AdamW (no decay) they then never move.
        table.register_hook(lambda g: g * keep.to(g.device))
    return min(1.0, low / (levels - 1)), min(1.0, high / (levels - 1))


def train_only_synthesis(model: HyperpriorAutoencoder) -> None:
    """Freeze everything the bitstream depends on; train g_s and the inverse gains."""
    model.requires_grad_(False)
    model.g_s.requires_grad_(True)
    model.log_inv_gain.requires_grad_(True)


def train_autoencoder(data: PhotoSet, val: PhotoSet, config: TrainConfig,
                      model_config: AutoencoderConfig = AutoencoderConfig(), init: Path | None = None,
                      lambda_range: tuple[float, float] | None = None, extend: tuple[int, int] = (0, 0),
                      synthesis_only: bool = False, add_context: bool = False) -> Path:
    """Train (resuming from config.out_dir) and export EMA weights at every checkpoint.

    ``init``: weights to start from when the run folder has no checkpoint yet (e.g. continue
    the shipped model); its architecture replaces ``model_config``. ``lambda_range``: new
    (λ at rate 0, λ at rate 1); the learned gains adapt to it, e.g. to widen the bitrate range
    of a trained model. ``extend`` = (low, high): add that many gain levels below and above
    ``init``'s rate range and train only those; ``synthesis_only``: train only the decoder side
    of ``init``; ``add_context``: give ``init`` a context model and train it with the rest
    (all in the module docstring)."""
    if any(extend) and (init is None or lambda_range is not None):
        raise SettingsError("extending the rate range needs init weights and keeps their λ range")
    if synthesis_only and (init is None or lambda_range is not None or any(extend)):
        raise SettingsError("fine-tuning the synthesis needs init weights and keeps everything else")
    if add_context and (init is None or lambda_range is not None or any(extend) or synthesis_only):
        raise SettingsError("adding a context model needs init weights and nothing else changed")
    prior_steps = 0
    if init is not None:
        _, config_dict, init_extra = read_metadata(init)
        model_config, prior_steps = AutoencoderConfig(**config_dict), int(init_extra.get("steps", 0))
    if lambda_range is not None:
        model_config = replace(model_config, lambda_min=lambda_range[0], lambda_max=lambda_range[1])
    export_path = Path(config.out_dir) / "autoencoder.safetensors"
    val_images = val.images[:8]

    def on_checkpoint(ema: HyperpriorAutoencoder, step: int) -> dict[str, float]:
        metrics = validate(ema, val_images) if val_images else {}
        save_weights(export_path, ema, "autoencoder", ema.config.to_dict(),
                     {"steps": prior_steps + step, "validation": metrics, "crop": config.crop, "batch": config.batch})
        return metrics

    model = HyperpriorAutoencoder(model_config)
    if init is not None and not (Path(config.out_dir) / "checkpoint.pt").exists():
        load_state(init, model, "autoencoder")
    loss_fn = rd_loss
    if any(extend):
        model = model.extended(*extend)  # a resumed checkpoint then overwrites its state
        loss_fn = partial(rd_loss, ends=train_only_outer_levels(model, *extend))
    if synthesis_only:
        train_only_synthesis(model)
        loss_fn = synthesis_loss
    if add_context:
        model = model.with_context()  # likewise
    trainer = Trainer(model, loss_fn, partial(data.crops, config.crop, config.batch), config, on_checkpoint)
    trainer.run()
    return export_path
