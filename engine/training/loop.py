"""A small, resumable training loop shared by the three stages (autoencoder, diffusion,
flow): EMA weights, bf16 autocast, channels_last on GPU, JSON-lines log, tqdm progress,
checkpoints that survive being killed, and DDP when launched by ``torchrun``."""
from __future__ import annotations

import copy
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

LossFn = Callable[[nn.Module, Tensor], tuple[Tensor, dict[str, float]]]


class Auxiliary(Protocol):
    """A second network trained beside the model, e.g. a discriminator: moved to the trainer's
    device, updated after each model step (inside the same autocast), checkpointed with it."""

    def to(self, device: torch.device) -> Any: ...

    def after_step(self) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class TrainConfig:
    out_dir: Path
    steps: int = 100_000
    lr: float = 1e-4
    warmup: int = 500
    batch: int = 8
    crop: int = 256
    seed: int = 0
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    log_every: int = 25
    checkpoint_every: int = 250
    device: str = "auto"
    bf16: bool = True
    threads: int = 0  # CPU threads; 0 = torch's default
    time_limit: float | None = None  # seconds for this invocation; the LR schedule ends with it


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


def data_seed(seed: int, rank: int, step: int) -> int:
    """The seed of the training crops for one process starting at ``step``: distinct per (seed, rank,
    step), unlike seed + rank + step, under which rank 1 at step 0 would draw rank 0's crops of a
    run resumed at step 1."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Distributed:
    """Rank bookkeeping; a plain single process when not launched by torchrun."""

    def __init__(self, device: torch.device) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1:
            torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        if self.world == 1:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def close(self) -> None:
        if self.world > 1:
            torch.distributed.destroy_process_group()


class Trainer:
    """Runs ``loss_fn`` over the batches of ``make_batches(seed)`` until ``config.steps``; resumes from
    out_dir. The seed differs per DDP rank and per resume step (``data_seed``), so ranks train on
    different crops and a resumed run does not replay the crops it began with.

    ``on_checkpoint(ema_model, step)`` runs on the main rank after each checkpoint (export,
    validation) and may return metrics to log. ``auxiliary`` (e.g. the realism objective's
    discriminator) steps after the model each step and is checkpointed with it."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, make_batches: Callable[[int], Iterator[Tensor]],
                 config: TrainConfig,
                 on_checkpoint: Callable[[nn.Module, int], dict[str, float]] | None = None,
                 auxiliary: Auxiliary | None = None) -> None:
        self.config = config
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = resolve_device(config.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.dist = Distributed(self.device)
        seed_everything(config.seed + self.dist.rank)
        self.model = model.to(self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.net = self.dist.wrap(self.model, self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=0.0)
        self.loss_fn = loss_fn
        self.on_checkpoint = on_checkpoint
        self.auxiliary = auxiliary.to(self.device) if auxiliary is not None else None
        self.step = 0
        self.out = Path(config.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self._resume()
        self.batches = make_batches(data_seed(config.seed, self.dist.rank, self.step))

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def _resume(self) -> None:
        if not self.checkpoint_path.exists():
            return
        # Local, self-written checkpoints only; weights_only refuses arbitrary pickled code.
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.auxiliary is not None:
            self.auxiliary.load_state_dict(state["auxiliary"])
        self.step = int(state["step"])
        seed_everything(self.config.seed + self.dist.rank + self.step)

    def _save(self) -> None:
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save({"model": self.model.state_dict(), "ema": self.ema.state_dict(),
                    "optimizer": self.optimizer.state_dict(), "step": self.step,
                    **({"auxiliary": self.auxiliary.state_dict()} if self.auxiliary is not None else {}),
                    "config": {k: str(v) for k, v in asdict(self.config).items()}}, tmp)
        tmp.replace(self.checkpoint_path)

    def _lr(self, time_progress: float) -> float:
        """Linear warm-up, then cosine decay to 10% over the planned steps or the time
        limit, whichever runs out first (a budgeted GPU run still ends annealed)."""
        c = self.config
        if self.step < c.warmup:
            return c.lr * (self.step + 1) / c.warmup
        progress = min(1.0, max((self.step - c.warmup) / max(1, c.steps - c.warmup), time_progress))
        return c.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    def _time_progress(self, started: float) -> float:
        """Share of the time limit spent (0 without one), the same on every DDP rank, so that
        all ranks step with one learning rate and stop at one step."""
        if not self.config.time_limit:
            return 0.0
        progress = (time.time() - started) / self.config.time_limit
        if self.dist.world > 1:
            agreed = torch.tensor(progress, device=self.device)
            torch.distributed.all_reduce(agreed, op=torch.distributed.ReduceOp.MAX)
            progress = float(agreed)
        return progress

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        for e, p in zip(self.ema.parameters(), self.model.parameters()):
            e.lerp_(p.detach(), 1 - decay)
        for e, b in zip(self.ema.buffers(), self.model.buffers()):
            e.copy_(b)

    def _log(self, record: dict) -> None:
        with open(self.out / "train.log", "a") as f:
            f.write(json.dumps(record) + "\n")

    def run(self) -> None:
        c = self.config
        bar = tqdm(total=c.steps, initial=self.step, disable=not self.dist.main, dynamic_ncols=True,
                   mininterval=5)
        sums: dict[str, float] = {}
        count, t0 = 0, time.time()
        started = t0  # the time limit counts from here, per invocation
        self.net.train()
        try:
            while self.step < c.steps:
                x = next(self.batches).to(self.device, non_blocking=True)
                if self.device.type == "cuda":
                    x = x.contiguous(memory_format=torch.channels_last)
                time_progress = self._time_progress(started)
                for group in self.optimizer.param_groups:
                    group["lr"] = self._lr(time_progress)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=c.bf16):
                    loss, metrics = self.loss_fn(self.net, x)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
                if torch.isfinite(grad_norm):
                    self.optimizer.step()
                    self._update_ema()
                if self.auxiliary is not None:
                    with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=c.bf16):
                        metrics = {**metrics, **self.auxiliary.after_step()}
                self.step += 1
                bar.update(1)
                metrics = {"loss": float(loss.detach()), **metrics}
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                if self.dist.main and (self.step % c.log_every == 0 or self.step == c.steps):
                    avg = {k: v / count for k, v in sums.items()}
                    bar.set_postfix({k: f"{v:.4g}" for k, v in avg.items()})
                    self._log({"step": self.step, "lr": self._lr(time_progress), "sec_per_step": (time.time() - t0) / count,
                               **avg})
                    sums, count, t0 = {}, 0, time.time()
                out_of_time = time_progress >= 1.0
                if self.dist.main and (self.step % c.checkpoint_every == 0 or self.step == c.steps
                                       or out_of_time):
                    self._save()
                    if self.on_checkpoint is not None:
                        extra = self.on_checkpoint(self.ema, self.step)
                        if extra:
                            self._log({"step": self.step, "validation": extra})
                        self.net.train()
                if out_of_time:
                    break
        finally:
            bar.close()
            self.dist.close()
