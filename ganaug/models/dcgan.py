"""The classic conditional DCGAN (Radford et al. 2016, https://arxiv.org/abs/1511.06434).

Generator: ``[z, embed(y)]`` -> transposed convs with BatchNorm + ReLU, halving the channels at
each doubling, tanh output. With ``cbn=True`` every BatchNorm also takes a per-class gain and
bias from the class embedding (class-conditional BatchNorm, as in SNGAN/BigGAN's generators),
so the label steers every layer, not only the input; ``hier_z=True`` adds BigGAN's hierarchical
z. Both are off: neither beat the plain generator on mnist5k (docs/results.md 1.1.5).
Discriminator: strided convs with LeakyReLU(0.2) (no norm on the first layer), spectral norm on
every layer by default (Miyato et al. 2018) or BatchNorm without it, and a projection head
(Miyato & Koyama 2018). Weights start from N(0, 0.02) as in DCGAN.
``width`` is the channel count next to the image (DCGAN's ngf/ndf = 64); the layer nearest the
4x4 (7x7 for 28) bottleneck has ``width * 2**(n-1)`` channels, n = number of doublings.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import torch
from torch import nn

from ganaug.errors import GanaugConfigError
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

ARCH = "dcgan"


def _init_dcgan(module: nn.Module) -> None:
    # DCGAN: conv/linear ~ N(0, 0.02), BatchNorm gain ~ N(1, 0.02), biases 0.
    init_weights(module, "normal")
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """Conditional DCGAN generator.

    Args:
        num_classes: number of classes (>= 2).
        channels: 1 or 3 image channels.
        image_size: one of ``SUPPORTED_SIZES``.
        z_dim: noise size.
        width: channels of the last hidden layer (DCGAN's ngf); default 64.
        embed_dim: size of the class embedding concatenated to ``z``; default 64.
        cbn: class-conditional BatchNorm: each BatchNorm's gain and bias also depend on the
            class embedding (default False, DCGAN's plain BatchNorm).
        hier_z: BigGAN's hierarchical z (needs ``cbn``): ``z`` is cut into one chunk for the
            input and one per BatchNorm, and each conditional BatchNorm takes the class
            embedding with its own chunk, so the noise reaches every resolution directly.
    """

    SUPPORTED_SIZES = SUPPORTED_SIZES
    DEFAULTS: ClassVar[dict[str, Any]] = {"width": 64, "embed_dim": 64, "cbn": False,
                                          "hier_z": False}

    def __init__(self, num_classes: int, channels: int = 3, image_size: int = 32,
                 z_dim: int = 128, width: int = 64, embed_dim: int = 64, cbn: bool = False,
                 hier_z: bool = False, **extra: Any) -> None:
        super().__init__()
        record_config(self, ARCH, "generator", extra, num_classes=num_classes,
                      channels=channels, image_size=image_size, z_dim=z_dim, width=width,
                      embed_dim=embed_dim, cbn=cbn, hier_z=hier_z)
        start, n_up = resolution_plan(image_size)
        # hier_z: one chunk of z per BatchNorm (n_up of them), the rest (the largest) to the input.
        self.z_chunks = [z_dim] if not hier_z else \
            [z_dim - (z_dim // (n_up + 1)) * n_up] + [z_dim // (n_up + 1)] * n_up
        if hier_z and not cbn:
            raise GanaugConfigError(
                "Arch 'dcgan': hier_z feeds chunks of z to the class-conditional BatchNorms; "
                "set cbn: true as well.")
        if min(self.z_chunks) < 1:
            raise GanaugConfigError(
                f"Arch 'dcgan': hier_z cuts z into {len(self.z_chunks)} chunks at "
                f"{image_size} px, but z_dim is {z_dim}; use z_dim >= {len(self.z_chunks)}.")
        cond_dim = embed_dim + (self.z_chunks[-1] if hier_z else 0)

        def norm(ch: int) -> nn.Module:
            return ConditionalBatchNorm2d(ch, cond_dim) if cbn else nn.BatchNorm2d(ch)

        ch = width * 2 ** (n_up - 1)
        self.embed = nn.Embedding(num_classes, embed_dim)
        # A start x start transposed conv on a 1x1 input is DCGAN's "project and reshape".
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(self.z_chunks[0] + embed_dim, ch, start, 1, 0, bias=False),
            norm(ch), nn.ReLU(inplace=True),
        ]
        for _ in range(n_up - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2 or 1, 4, 2, 1, bias=False),
                       norm(ch // 2 or 1), nn.ReLU(inplace=True)]
            ch = ch // 2 or 1
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        _init_dcgan(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``z`` (N, z_dim) float, ``labels`` (N,) int64 -> (N, C, H, W) float in [-1, 1]."""
        embed = self.embed(labels).to(z.dtype)
        chunks = torch.split(z, self.z_chunks, dim=1)
        h = torch.cat([chunks[0], embed], dim=1)[:, :, None, None]
        if not self.config["cbn"]:
            return self.net(h)
        # Each conditional BatchNorm takes the class embedding, with its own chunk of z (hier_z).
        conds = (iter([torch.cat([embed, c], dim=1) for c in chunks[1:]]) if len(chunks) > 1
                 else itertools.repeat(embed))
        for layer in self.net:
            h = layer(h, next(conds)) if isinstance(layer, ConditionalBatchNorm2d) else layer(h)
        return h


class DCGANDiscriminator(nn.Module):
    """Conditional DCGAN discriminator with a projection head.

    Args:
        num_classes: number of classes (>= 2).
        channels: 1 or 3 image channels.
        image_size: one of ``SUPPORTED_SIZES``.
        width: channels of the first conv (DCGAN's ndf); default 64.
        spectral_norm: spectral norm on every layer (default True); when False the hidden
            convs use BatchNorm instead, as in the original DCGAN.
    """

    SUPPORTED_SIZES = SUPPORTED_SIZES
    DEFAULTS: ClassVar[dict[str, Any]] = {"width": 64, "spectral_norm": True}

    def __init__(self, num_classes: int, channels: int = 3, image_size: int = 32,
                 width: int = 64, spectral_norm: bool = True, **extra: Any) -> None:
        super().__init__()
        record_config(self, ARCH, "discriminator", extra, num_classes=num_classes,
                      channels=channels, image_size=image_size, width=width,
                      spectral_norm=spectral_norm)

        start, n_down = resolution_plan(image_size)
        sn = bool(spectral_norm)
        convs = [nn.Conv2d(channels, width, 4, 2, 1)]
        chs = [width]
        for _ in range(n_down - 1):
            convs.append(nn.Conv2d(chs[-1], chs[-1] * 2, 4, 2, 1, bias=sn))
            chs.append(chs[-1] * 2)
        features = chs[-1] * start * start
        linear = nn.Linear(features, 1)
        embed = nn.Embedding(num_classes, features)
        _init_dcgan(nn.ModuleList([*convs, linear, embed]))

        layers: list[nn.Module] = []
        for i, (conv, ch) in enumerate(zip(convs, chs, strict=True)):
            layers.append(maybe_sn(conv, sn))
            if i > 0 and not sn:
                layers.append(nn.BatchNorm2d(ch))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        # The last activation runs on the flat features (the same function): on NHWC features
        # its backward met a contiguous gradient from the flatten and ran 4x slower on the CPU.
        layers.insert(len(layers) - 1, nn.Flatten())
        self.net = nn.Sequential(*layers)
        self.linear = maybe_sn(linear, sn)
        self.embed = maybe_sn(embed, sn)
        _init_dcgan(nn.ModuleList(m for m in self.net if isinstance(m, nn.BatchNorm2d)))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``x`` (N, C, H, W) float in [-1, 1], ``labels`` (N,) int64 -> (N,) logits."""
        return projection_logits(self.net(x), labels, self.linear, self.embed)


@register_arch(ARCH)
def dcgan() -> tuple[type[nn.Module], type[nn.Module]]:
    """The conditional DCGAN pair."""
    return DCGANGenerator, DCGANDiscriminator
