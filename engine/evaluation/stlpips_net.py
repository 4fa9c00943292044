"""Shift-tolerant LPIPS (Ghildyal & Liu, ECCV 2022) with its AlexNet trunk, rebuilt here.

The ``stlpips-pytorch`` package ships the trained weights but imports torchvision, IPython
and torchsummary at module level; none of them is needed for this variant, so the network is
defined here and only the weight file is taken from the installed package.

The trunk is AlexNet made shift tolerant: the first convolution runs at stride 1 and every
down-sampling is a reflect-padded [1 2 1]² blur followed by stride 2 (BlurPool). LPIPS then
compares unit-normalised features of five stages with learned non-negative channel weights."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

WEIGHTS_FILE = Path("weights") / "vST0.0" / "alex_shift_tolerant.pth"
STAGE_CHANNELS = (64, 192, 384, 256, 256)


class BlurPool(nn.Module):
    """Anti-aliased stride-2 down-sampling: reflect pad 2, depthwise [1 2 1]²/16 blur, stride 2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = torch.outer(taps, taps) / 16
        self.register_buffer("filt", kernel.expand(channels, 1, 3, 3).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


def _stage(layers: dict[int, nn.Module]) -> nn.Sequential:
    # Layer indices follow the weight file's names (net.sliceK.<index>.weight).
    return nn.Sequential(OrderedDict((str(index), layer) for index, layer in layers.items()))


class ShiftTolerantAlexNet(nn.Module):
    """Five feature stages, each ending in a ReLU; returns the list of stage outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.slice1 = _stage({0: nn.Conv2d(3, 64, 11, padding=2), 1: BlurPool(64), 2: nn.ReLU()})
        self.slice2 = _stage({3: nn.MaxPool2d(3, stride=1), 4: BlurPool(64),
                              5: nn.Conv2d(64, 192, 5, padding=2), 6: nn.ReLU()})
        self.slice3 = _stage({7: nn.MaxPool2d(3, stride=1), 8: BlurPool(192),
                              9: nn.Conv2d(192, 384, 3, padding=1), 10: nn.ReLU()})
        self.slice4 = _stage({11: nn.Conv2d(384, 256, 3, padding=1), 12: nn.ReLU()})
        self.slice5 = _stage({13: nn.Conv2d(256, 256, 3, padding=1), 14: nn.ReLU()})

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in (self.slice1, self.slice2, self.slice3, self.slice4, self.slice5):
            x = stage(x)
            features.append(x)
        return features


class ShiftTolerantLPIPS(nn.Module):
    """Distance between two batches of images in [-1, 1]; returns one value per image."""

    def __init__(self) -> None:
        super().__init__()
        # ImageNet-style input normalisation; the trained values are loaded from the weights.
        self.register_buffer("shift", torch.zeros(1, 3, 1, 1))
        self.register_buffer("scale", torch.ones(1, 3, 1, 1))
        self.net = ShiftTolerantAlexNet()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in STAGE_CHANNELS)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fa = self.net((a - self.shift) / self.scale)
        fb = self.net((b - self.shift) / self.scale)
        total = a.new_zeros(a.shape[0])
        for lin, xa, xb in zip(self.lins, fa, fb):
            diff = (_unit_channels(xa) - _unit_channels(xb)) ** 2
            total = total + lin(diff).mean(dim=(1, 2, 3))
        return total

    def load_package_weights(self, package_dir: Path) -> "ShiftTolerantLPIPS":
        """Load ``alex_shift_tolerant.pth`` from an installed stlpips_pytorch package folder."""
        state = torch.load(package_dir / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        renamed = {}
        for key, value in state.items():
            if key.startswith("scaling_layer."):
                key = key.removeprefix("scaling_layer.")
            elif key.startswith("lin"):  # lin{k}.model.1.weight (index 0 was a dropout)
                key = f"lins.{key[3]}.weight"
            renamed[key] = value
        self.load_state_dict(renamed, strict=True)
        return self.eval()


def _unit_channels(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)
