"""SNGAN/BigGAN-style residual conditional GAN (Miyato et al. 2018, https://arxiv.org/abs/1802.05957;
Brock et al. 2019, https://arxiv.org/abs/1809.11096).

Generator: ``linear(z)`` -> start x start map -> one residual up-block per doubling
(CBN-ReLU-upsample-conv3x3-CBN-ReLU-conv3x3, shortcut upsample + 1x1 conv) -> BN-ReLU-conv3x3-tanh.
The class-conditional BatchNorms take gain and bias from one shared class embedding (BigGAN's
shared embedding; unlike BigGAN, z is not split across blocks). Discriminator: an "optimized"
first down-block, residual down-blocks until 8x8 (7x7 for 28), then two blocks without
downsampling, ReLU, global sum pooling and a projection head, spectral norm on every layer.
Defaults follow SNGAN/BigGAN on CIFAR-10: the same channel count in every block, ``width=256``
for G and ``width=128`` for D, ``embed_dim=128``. Weights are initialised orthogonally (BigGAN).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ganaug.models.layers import (
    SUPPORTED_SIZES,
    ConditionalBatchNorm2d,
    init_weights,
    maybe_sn,
    projection_logits,
    record_config,
    resolution_plan,
)
from ganaug.models.registry import register_arch

ARCH = "resnet"


class GBlock(nn.Module):
    """Residual up-block with class-conditional BatchNorm; doubles H and W.

    Args:
        in_ch: input channels.
        out_ch: output channels.
        embed_dim: size of the shared class embedding fed to both CBNs.
    """

    def __init__(self, in_ch: int, out_ch: int, embed_dim: int) -> None:
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(in_ch, embed_dim)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.bn2 = ConditionalBatchNorm2d(out_ch, embed_dim)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1, 1, 0)

    def forward(self, x: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
        """``x`` (N, in_ch, H, W), ``embed`` (N, embed_dim) -> (N, out_ch, 2H, 2W)."""
        h = F.interpolate(F.relu(self.bn1(x, embed)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), embed)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class DBlock(nn.Module):
    """Residual discriminator block with spectral norm, optionally halving H and W.

    Args:
        in_ch: input channels.
        out_ch: output channels.
        down: average-pool by 2 at the end of both paths.
        first: SNGAN's "optimized" first block (no ReLU before the first conv; the shortcut
            pools before its 1x1 conv).
    """

    def __init__(self, in_ch: int, out_ch: int, down: bool, first: bool = False) -> None:
        super().__init__()
        self.down, self.first = down, first
        convs = [nn.Conv2d(in_ch, out_ch, 3, 1, 1), nn.Conv2d(out_ch, out_ch, 3, 1, 1)]
        learnable_sc = in_ch != out_ch or down
        shortcut = nn.Conv2d(in_ch, out_ch, 1, 1, 0) if learnable_sc else None
        init_weights(nn.ModuleList([*convs, *([shortcut] if shortcut else [])]), "orthogonal")
        self.conv1, self.conv2 = (maybe_sn(c, True) for c in convs)
        self.shortcut = maybe_sn(shortcut, True) if shortcut is not None else None

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.down else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (N, in_ch, H, W) -> (N, out_ch, H', W'), H' = H/2 when ``down``."""
        h = x if self.first else F.relu(x)
        h = self._pool(self.conv2(F.relu(self.conv1(h))))
        if self.shortcut is None:
            return h + x
        if self.first:
            return h + self.shortcut(self._pool(x))
        return h + self._pool(self.shortcut(x))


class ResNetGenerator(nn.Module):
    """Conditional residual generator (SNGAN/BigGAN-CIFAR layout).

    Args:
        num_classes: number of classes (>= 2).
        channels: 1 or 3 image channels.
        image_size: one of ``SUPPORTED_SIZES``.
        z_dim: noise size.
        width: channels of every residual block (BigGAN-CIFAR G: 256).
        embed_dim: size of the shared class embedding (BigGAN: 128).
    """

    SUPPORTED_SIZES = SUPPORTED_SIZES
    DEFAULTS: ClassVar[dict[str, Any]] = {"width": 256, "embed_dim": 128}

    def __init__(self, num_classes: int, channels: int = 3, image_size: int = 32,
                 z_dim: int = 128, width: int = 256, embed_dim: int = 128, **extra: Any) -> None:
        super().__init__()
        record_config(self, ARCH, "generator", extra, num_classes=num_classes,
                      channels=channels, image_size=image_size, z_dim=z_dim, width=width,
                      embed_dim=embed_dim)

        self.start, n_up = resolution_plan(image_size)
        self.width = width
        self.shared = nn.Embedding(num_classes, embed_dim)
        self.linear = nn.Linear(z_dim, width * self.start * self.start)
        self.blocks = nn.ModuleList(GBlock(width, width, embed_dim) for _ in range(n_up))
        self.out = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(),
                                 nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh())
        init_weights(self, "orthogonal")

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``z`` (N, z_dim) float, ``labels`` (N,) int64 -> (N, C, H, W) float in [-1, 1]."""
        embed = self.shared(labels).to(z.dtype)
        h = self.linear(z).view(z.shape[0], self.width, self.start, self.start)
        for block in self.blocks:
            h = block(h, embed)
        return self.out(h)


class ResNetDiscriminator(nn.Module):
    """Conditional residual projection discriminator with spectral norm (SNGAN-CIFAR layout).

    Args:
        num_classes: number of classes (>= 2).
        channels: 1 or 3 image channels.
        image_size: one of ``SUPPORTED_SIZES``.
        width: channels of every block (SNGAN-CIFAR / BigGAN-CIFAR D: 128).
    """

    SUPPORTED_SIZES = SUPPORTED_SIZES
    DEFAULTS: ClassVar[dict[str, Any]] = {"width": 128}

    def __init__(self, num_classes: int, channels: int = 3, image_size: int = 32,
                 width: int = 128, **extra: Any) -> None:
        super().__init__()
        record_config(self, ARCH, "discriminator", extra, num_classes=num_classes,
                      channels=channels, image_size=image_size, width=width)

        blocks = [DBlock(channels, width, down=True, first=True)]
        res = image_size // 2
        while res > 8:  # downsample to 8x8 (7x7 for 28), as SNGAN does at 32x32
            blocks.append(DBlock(width, width, down=True))
            res //= 2
        blocks += [DBlock(width, width, down=False), DBlock(width, width, down=False)]
        self.blocks = nn.Sequential(*blocks)
        linear, embed = nn.Linear(width, 1), nn.Embedding(num_classes, width)
        init_weights(nn.ModuleList([linear, embed]), "orthogonal")
        self.linear, self.embed = maybe_sn(linear, True), maybe_sn(embed, True)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``x`` (N, C, H, W) float in [-1, 1], ``labels`` (N,) int64 -> (N,) logits."""
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))
        return projection_logits(h, labels, self.linear, self.embed)


@register_arch(ARCH)
def resnet() -> tuple[type[nn.Module], type[nn.Module]]:
    """The SNGAN/BigGAN-style residual pair."""
    return ResNetGenerator, ResNetDiscriminator
