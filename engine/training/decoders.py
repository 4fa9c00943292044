"""Stages 2 and 3: train the diffusion or rectified-flow decoder, or the autoencoder's
post-filter, on (x_ae, x) pairs made on the fly by the frozen autoencoder at rates r ~ U(0, 1),
so one network serves every bitrate. A rate-conditioned network is also told each pair's r."""
from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from engine.codec.autoencoder import AutoencoderConfig, HyperpriorAutoencoder
from engine.data.photos import PhotoSet
from engine.decoders.diffusion import diffusion_loss
from engine.decoders.flow import StartNoise, flow_loss
from engine.decoders.post_filter import PostFilter, post_filter_loss
from engine.decoders.score_decoder import DecoderKind, ScoreDecoder, TrainedFacts
from engine.decoders.unet import ConditionalUNet, UNetConfig
from engine.errors import SettingsError, WeightsError
from engine.evaluation.metrics import st_lpips_network
from engine.training.loop import TrainConfig, Trainer
from engine.training.pairs import make_pairs
from engine.training.realism_objective import (
    RealismConfig,
    RealismObjective,
    realism_validation,
)
from engine.weights import load_state, read_metadata

VALIDATION_BATCHES = 2


def load_frozen_autoencoder(path: str | Path) -> HyperpriorAutoencoder:
    _, config, _ = read_metadata(path)
    ae = HyperpriorAutoencoder(AutoencoderConfig(**config))
    load_state(path, ae, "autoencoder")
    return ae.eval().requires_grad_(False)


def decoder_loss(kind: DecoderKind, ae: HyperpriorAutoencoder, facts: TrainedFacts,
                 generator: torch.Generator | None = None,
                 post_filter: PostFilter | None = None) -> Callable[[nn.Module, Tensor], tuple[Tensor, dict]]:
    def loss_fn(net: nn.Module, x: Tensor) -> tuple[Tensor, dict[str, float]]:
        x_ae, rate = make_pairs(ae, x, generator, post_filter)
        network = partial(net, rate=rate)  # a network without rate conditioning ignores it
        if kind == "diffusion":
            loss = diffusion_loss(network, x, x_ae, facts.shift_range, generator, facts.residual_sigma)
        else:
            loss = flow_loss(network, x, x_ae, facts.flow_sigma.at(rate), generator, facts.residual_sigma)
        return loss, {}

    return loss_fn


def _validation_batches(val: PhotoSet, config: TrainConfig) -> list[Tensor]:
    """The same few validation crops at every checkpoint (none without validation photos)."""
    if not val.images:
        return []
    crops = val.crops(config.crop, config.batch, seed=12345)
    return [next(crops) for _ in range(VALIDATION_BATCHES)]


def _check_resumed_facts(out_dir: Path, record: dict) -> None:
    """Record what a run trains with in its folder, and refuse to resume it with anything else:
    the loss and the exported facts would silently disagree with the steps already taken."""
    path = out_dir / "decoder_facts.json"
    if path.exists():
        started = json.loads(path.read_text())
        if started != record:
            changed = ", ".join(f"{k} {started.get(k)} → {record.get(k)}"
                                for k in sorted(set(started) | set(record)) if started.get(k) != record.get(k))
            raise SettingsError(f"{out_dir} was started with other decoder settings ({changed}); "
                                "resume it with the options it started with, or use a new --out")
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # DDP ranks all write it: never a half-written file
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(path)


def train_decoder(kind: DecoderKind, autoencoder_path: str | Path, data: PhotoSet, val: PhotoSet,
                  config: TrainConfig, unet: UNetConfig = UNetConfig(),
                  facts: TrainedFacts = TrainedFacts(), init: Path | None = None,
                  condition_on_rate: bool = False, flow_sigma: StartNoise | None = None,
                  post_filter_path: Path | None = None, realism: RealismConfig | None = None) -> Path:
    """Train (resuming from config.out_dir); export EMA weights and a fixed-noise validation
    loss at every checkpoint. ``init``: decoder weights to start from when the run folder has
    no checkpoint yet; their architecture and trained facts replace ``unet`` and ``facts``.
    ``condition_on_rate``: add rate conditioning (to ``unet``, or to the network of ``init``,
    which then starts out computing exactly what it did). ``flow_sigma``: train the flow at this
    start noise instead of the one in ``facts`` (or of ``init``: a fine-tune moves it); one that
    varies with the rate needs ``condition_on_rate`` (or an ``init`` that has it).
    ``post_filter_path``: condition on the autoencoder's decode after this post-filter (what the
    Autoencoder pane shows) instead of g_s's output; an ``init`` trained on g_s's output moves.
    ``realism``: train with the realism objective (engine/training/realism_objective.py) instead of regression;
    its discriminator is checkpointed with the run, and each checkpoint logs its held-out signal."""
    net, prior_steps = ConditionalUNet(unet), 0
    if init is not None:
        start = ScoreDecoder.load(init)
        if start.kind != kind:
            raise WeightsError(f"{init} holds a {start.kind} decoder, not a {kind} decoder")
        net, facts, prior_steps = start.net.float().train(), start.facts, start.facts.train_steps
    if flow_sigma is not None:
        if kind != "flow":
            raise SettingsError("flow_sigma is for the flow decoder")
        facts = replace(facts, flow_sigma=flow_sigma)
    post_filter = PostFilter.load(post_filter_path) if post_filter_path is not None else None
    if post_filter is not None:
        post_filter.net.requires_grad_(False)
        facts = replace(facts, condition="post_filtered")
    elif facts.on_post_filtered:
        raise SettingsError("these decoder weights refine the post-filtered decode: pass the post-filter "
                            "(--post-filtered) to keep training them")
    if condition_on_rate and not net.config.rate_conditioning:
        net = net.with_rate_conditioning().train()
    if kind == "flow" and facts.flow_sigma.varies and not net.config.rate_conditioning:
        raise SettingsError("a start noise that varies with the rate needs a rate-conditioned network "
                            "(--condition-on-rate): it cannot tell the noise levels apart otherwise")
    if realism is not None:
        facts = replace(facts, objective="realism")
    export_path = Path(config.out_dir) / f"{kind}.safetensors"
    record = {**facts.to_dict(), "train_steps": prior_steps}
    if realism is not None:
        record["realism"] = realism.to_dict()
    _check_resumed_facts(Path(config.out_dir), record)
    ae = load_frozen_autoencoder(autoencoder_path)
    val_batches = _validation_batches(val, config)
    if realism is not None:
        objective = RealismObjective(kind, ae, facts, realism, post_filter, st_lpips_network())

        def on_realism_checkpoint(ema: nn.Module, step: int) -> dict[str, float]:
            ScoreDecoder(ema, kind, replace(facts, train_steps=prior_steps + step, crop=config.crop)).save(export_path)
            return realism_validation(objective, ema, val_batches) if val_batches else {}

        batches = partial(data.crops, config.crop, config.batch, min_scale=realism.crop_min_scale)
        Trainer(net, objective, batches, config, on_realism_checkpoint, auxiliary=objective).run()
        return export_path

    def on_checkpoint(ema: nn.Module, step: int) -> dict[str, float]:
        device = next(ema.parameters()).device
        stamped = replace(facts, train_steps=prior_steps + step, crop=config.crop)
        ScoreDecoder(ema, kind, stamped).save(export_path)
        if not val_batches:
            return {}
        gen = torch.Generator().manual_seed(0)  # same noise every time: losses comparable across steps
        loss_fn = decoder_loss(kind, ae.to(device), facts, gen, post_filter)
        with torch.no_grad():
            losses = [float(loss_fn(ema, x.to(device))[0]) for x in val_batches]
        return {"val_loss": sum(losses) / len(losses)}

    trainer = Trainer(net, decoder_loss(kind, ae, facts, post_filter=post_filter),
                      partial(data.crops, config.crop, config.batch), config, on_checkpoint)
    ae.to(trainer.device)
    if post_filter is not None:
        post_filter.net.to(trainer.device)
    trainer.run()
    return export_path


def train_post_filter(autoencoder_path: str | Path, data: PhotoSet, val: PhotoSet, config: TrainConfig,
                      init: Path | None = None) -> Path:
    """Train the post-filter (resuming from config.out_dir), starting from ``init`` (a post-filter
    or a rate-conditioned flow decoder; None: the identity); export EMA weights at every
    checkpoint with the validation PSNR gain over x_ae (``val_gain_db``, fixed crops and rates)."""
    start = PostFilter.start_from(init)
    net, prior_steps = start.net.float().train(), start.facts.train_steps
    export_path = Path(config.out_dir) / "postfilter.safetensors"
    _check_resumed_facts(Path(config.out_dir), {**start.facts.to_dict(), "train_steps": prior_steps})
    ae = load_frozen_autoencoder(autoencoder_path)

    def loss_fn(model: nn.Module, x: Tensor) -> tuple[Tensor, dict]:
        x_ae, rate = make_pairs(ae, x)
        return post_filter_loss(model, x, x_ae, rate), {}

    val_batches = _validation_batches(val, config)

    def on_checkpoint(ema: nn.Module, step: int) -> dict[str, float]:
        facts = replace(start.facts, train_steps=prior_steps + step, crop=config.crop)
        PostFilter(ema, facts).save(export_path)
        if not val_batches:
            return {}
        device = next(ema.parameters()).device
        gen = torch.Generator().manual_seed(0)  # the same rates every time: comparable across steps
        filtered_mse, ae_mse = 0.0, 0.0
        with torch.no_grad():
            for x in val_batches:
                x = x.to(device)
                x_ae, rate = make_pairs(ae.to(device), x, gen)
                filtered_mse += float(post_filter_loss(ema, x, x_ae, rate))
                ae_mse += float(torch.mean((2 * x_ae - 2 * x) ** 2))
        return {"val_loss": filtered_mse / len(val_batches),
                "val_gain_db": 10 * math.log10(ae_mse / filtered_mse)}

    trainer = Trainer(net, loss_fn, partial(data.crops, config.crop, config.batch), config, on_checkpoint)
    ae.to(trainer.device)
    trainer.run()
    return export_path
