"""Weights on disk: safetensors files (never pickles), stored in bf16, with the model's
kind and constructor config in the file's metadata so a file alone rebuilds its model."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from engine.errors import WeightsError


def save_weights(path: str | Path, module: torch.nn.Module, kind: str, config: dict[str, Any],
                 extra: dict[str, Any] | None = None, dtype: torch.dtype = torch.bfloat16) -> None:
    """Write ``module``'s state (floats cast to ``dtype``) with ``kind``/``config``/``extra`` as metadata."""
    tensors = {}
    for name, value in module.state_dict().items():
        value = value.detach().cpu()
        tensors[name] = (value.to(dtype) if value.is_floating_point() else value).contiguous()
    meta = {"kind": kind, "config": json.dumps(config), "extra": json.dumps(extra or {})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def read_metadata(path: str | Path) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Return (kind, config, extra) from a weights file without loading its tensors."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (OSError, SafetensorError) as exc:
        raise WeightsError(f"cannot read weights {path}: {exc}") from exc
    if "kind" not in meta or "config" not in meta:
        raise WeightsError(f"{path} has no hfd metadata (kind/config)")
    return meta["kind"], json.loads(meta["config"]), json.loads(meta.get("extra", "{}"))


def load_state(path: str | Path, module: torch.nn.Module, expect_kind: str) -> dict[str, Any]:
    """Load tensors into ``module`` (cast to its dtype); check the kind; return ``extra``."""
    kind, _config, extra = read_metadata(path)
    if kind != expect_kind:
        raise WeightsError(f"{path} holds a {kind!r} model, expected {expect_kind!r}")
    state = load_file(str(path))
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise WeightsError(f"{path} does not fit the architecture "
                           f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return extra


def file_hash(path: str | Path) -> str:
    """First 16 hex digits of the file's SHA-256: identifies the exact weights in bitstreams."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]
