"""CIFAR-style ResNet-20 (He et al. 2016) with switches for skip connections and batch norm.

The down-sampling shortcut is He et al.'s option A (identity plus zero channels). It is built
from a contiguous strided slice and a channel concatenation: the ``F.pad`` form of the same
shortcut runs 15–20× slower on CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _ZeroPadShortcut(nn.Module):
    def __init__(self, stride: int, extra_channels: int):
        super().__init__()
        self.stride = stride
        self.extra = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride].contiguous()
        if self.extra:
            zeros = x.new_zeros(x.shape[0], self.extra, x.shape[2], x.shape[3])
            x = torch.cat([x, zeros], dim=1)
        return x


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, residual: bool, batch_norm: bool):
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.Identity())
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=not batch_norm)
        self.bn1 = norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=not batch_norm)
        self.bn2 = norm(c_out)
        self.residual = residual
        self.shortcut: nn.Module = _ZeroPadShortcut(stride, c_out - c_in) if (stride != 1 or c_in != c_out) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + self.shortcut(x)
        return F.relu(out)


class ResNet20(nn.Module):
    def __init__(self, residual: bool, batch_norm: bool, in_channels: int, num_classes: int, width_mult: float):
        super().__init__()
        widths = [max(1, round(w * width_mult)) for w in (16, 32, 64)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=not batch_norm)
        self.bn1 = nn.BatchNorm2d(widths[0]) if batch_norm else nn.Identity()
        blocks: list[nn.Module] = []
        c_in = widths[0]
        for stage, c_out in enumerate(widths):
            for i in range(3):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(BasicBlock(c_in, c_out, stride, residual, batch_norm))
                c_in = c_out
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        x = x.mean(dim=(2, 3))
        return self.fc(x)


def resnet20(
    residual: bool = True,
    batch_norm: bool = True,
    in_channels: int = 3,
    num_classes: int = 10,
    width_mult: float = 1.0,
) -> ResNet20:
    """ResNet-20: 3 stages × 3 BasicBlocks, widths 16/32/64 × ``width_mult``."""
    return ResNet20(residual, batch_norm, in_channels, num_classes, width_mult)
