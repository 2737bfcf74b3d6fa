"""Building blocks shared by the architecture families: checks, init, spectral norm, conditional BN.

The conditional BatchNorm follows BigGAN's "shared embedding" (Brock et al. 2019,
https://arxiv.org/abs/1809.11096): one class embedding feeds per-layer linear projections to a
gain (centred on 1) and a bias.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ganaug._checks import check_int
from ganaug.errors import GanaugConfigError, did_you_mean

#: Image sizes every built-in family supports; 28 (MNIST) starts from 7x7, the rest from 4x4.
SUPPORTED_SIZES = (16, 28, 32, 64)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``module`` (shared parameters counted once).

    Args:
        module: any ``nn.Module``.
        trainable_only: count only parameters with ``requires_grad``.

    Returns:
        The total number of elements.
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def check_positive_int(arch: str, name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` as int, or raise if it is not an integer ``>= minimum``.

    Raises:
        GanaugConfigError: ``value`` is not an int (bools refused) or is below ``minimum``.
    """
    return check_int(f"Arch '{arch}': {name}", value, minimum=minimum,
                     hint=f"Pass {name}={max(minimum, 8)} or larger (e.g. width=64).")


def check_switch(arch: str, name: str, value: Any) -> bool:
    """Return ``value`` as bool, or raise if it is not a bool (NumPy's ``bool_`` accepted).

    Raises:
        GanaugConfigError: ``value`` is not a bool (``1``, ``"no"`` and the like are refused).
    """
    if not isinstance(value, (bool, np.bool_)):
        raise GanaugConfigError(f"Arch '{arch}': {name} must be true or false, got {value!r}.")
    return bool(value)


def check_image_size(arch: str, image_size: Any, sizes: tuple[int, ...] = SUPPORTED_SIZES) -> int:
    """Validate ``image_size`` against ``sizes`` (the class's ``SUPPORTED_SIZES``).

    Raises:
        GanaugConfigError: the size is not supported.
    """
    if isinstance(image_size, bool) or image_size not in sizes:
        near = (f"the nearest is {nearest_size(sizes, image_size)}: "
                f"image_size={nearest_size(sizes, image_size)}" if isinstance(image_size, int)
                else "image_size= one of those")
        raise GanaugConfigError(
            f"Arch '{arch}' cannot make {image_size}x{image_size} images; it supports sizes "
            f"{', '.join(map(str, sizes))}. Resize the data ({near})."
        )
    return int(image_size)


def nearest_size(sizes: tuple[int, ...], image_size: int) -> int:
    """The size of ``sizes`` to resize ``image_size`` images to: the closest not smaller (no
    detail lost), else the largest."""
    return min(sizes, key=lambda s: (s < image_size, abs(s - image_size)))


def check_square(height: int, width: int, sizes: tuple[int, ...] = SUPPORTED_SIZES) -> None:
    """Refuse training images that are not square: every arch makes square images, so the
    real and fake batches would not fit together (torch failed inside D's first step).

    Raises:
        GanaugDataError: ``height != width``, naming an ``image_size`` among ``sizes``.
    """
    if int(height) != int(width):
        from ganaug.errors import GanaugDataError

        fit = nearest_size(sizes, max(int(height), int(width)))
        raise GanaugDataError(
            f"The images are {width}x{height} (width x height), not square, and a GAN makes "
            f"square images. Resize them all with image_size=N (non-square images are "
            f"stretched), e.g. image_size={fit}.")


def check_common(arch: str, num_classes: Any, channels: Any) -> None:
    """Validate ``num_classes >= 2`` and ``channels in (1, 3)``.

    Raises:
        GanaugConfigError: fewer than 2 classes, or channels other than 1 and 3.
    """
    check_int(f"Arch '{arch}': num_classes", num_classes, minimum=2,
              hint="A class-conditional GAN needs at least 2 classes.")
    if isinstance(channels, bool) or channels not in (1, 3):
        raise GanaugConfigError(
            f"Arch '{arch}': channels must be 1 or 3, got {channels!r}. Use 1 for grey or 3 for "
            "RGB images."
        )


def record_config(module: nn.Module, arch: str, role: str, extra: dict[str, Any], *,
                  num_classes: int, channels: int, image_size: int, **arch_args: Any) -> None:
    """Check a network's constructor arguments and record them on ``module``.

    Sets ``num_classes``, ``channels``, ``image_size`` (and ``z_dim`` when given) as attributes
    and ``module.config``: every constructor argument, so ``type(module)(**module.config)``
    rebuilds it. An ``arch_args`` whose default is a bool (a switch such as ``spectral_norm``)
    must be a bool; every other one must be an integer >= 1.

    This is the one place a network's arguments are checked: every constructor calls it, so a
    network built through the registry and one built from its class directly are checked alike.

    Raises:
        GanaugConfigError: an unknown keyword, bad classes/channels/size, or a bad integer.
    """
    check_no_extra_kwargs(arch, role, extra, type(module).DEFAULTS)
    check_common(arch, num_classes, channels)
    check_image_size(arch, image_size, type(module).SUPPORTED_SIZES)
    num_classes, channels, image_size = int(num_classes), int(channels), int(image_size)
    module.num_classes, module.channels, module.image_size = num_classes, channels, image_size
    config: dict[str, Any] = {"num_classes": num_classes, "channels": channels,
                              "image_size": image_size}
    switches = {k for k, v in type(module).DEFAULTS.items() if isinstance(v, bool)}
    for name, value in arch_args.items():
        if name in switches:
            config[name] = check_switch(arch, name, value)
        else:
            config[name] = check_positive_int(arch, name, value)
    if "z_dim" in config:
        module.z_dim = config["z_dim"]
    module.config = config


def resolution_plan(image_size: int) -> tuple[int, int]:
    """``(start_resolution, n_doublings)`` so that ``start * 2**n == image_size``.

    28 starts from 7x7 (two doublings); 16, 32 and 64 start from 4x4.
    """
    start = 7 if image_size % 7 == 0 else 4
    return start, (image_size // start).bit_length() - 1


def init_weights(module: nn.Module, scheme: str) -> None:
    """Initialise conv/linear/embedding weights in place and zero their biases.

    Args:
        module: a module tree; only ``nn.Conv2d``, ``nn.ConvTranspose2d``, ``nn.Linear`` and
            ``nn.Embedding`` leaves are touched (BatchNorm keeps its own 1/0 init).
        scheme: ``"normal"`` = N(0, 0.02) as in DCGAN; ``"orthogonal"`` as in BigGAN.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            if scheme == "orthogonal":
                nn.init.orthogonal_(m.weight)
            else:
                nn.init.normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)


def maybe_sn(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap ``module`` in spectral norm (Miyato et al. 2018) when ``enabled``.

    Call after :func:`init_weights`: the parametrization keeps the initialised weight as its
    ``original`` and normalises it on every forward in train mode.
    """
    if not enabled:
        return module
    return nn.utils.parametrizations.spectral_norm(module)


def to_channels_last(module: nn.Module) -> nn.Module:
    """Put ``module``'s 4-d weights and buffers in ``channels_last`` (NHWC), in place, except
    the transposed convs of stride 1 and no padding: they project a 1x1 input (DCGAN's "project
    and reshape"), and with NHWC weights the CPU's oneDNN ran them 5x slower (0.5 -> 2.5 ms at
    batch 64, 192 -> 64 x 7 x 7). The outputs are the same. Returns ``module``."""
    module.to(memory_format=torch.channels_last)
    for m in module.modules():
        if isinstance(m, nn.ConvTranspose2d) and m.stride == (1, 1) and m.padding == (0, 0):
            m.weight.data = m.weight.data.contiguous()
    return module


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose per-channel gain and bias are linear functions of a class embedding.

    ``out = BN(x) * (1 + W_g e) + W_b e`` with ``e`` the shared class embedding; the gain is
    centred on 1 so a fresh layer behaves like plain BatchNorm.

    Args:
        num_features: channels C of the input.
        embed_dim: size of the shared embedding ``e``.
    """

    def __init__(self, num_features: int, embed_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gain = nn.Linear(embed_dim, num_features, bias=False)
        self.bias = nn.Linear(embed_dim, num_features, bias=False)

    def forward(self, x: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
        """``x`` (N, C, H, W), ``embed`` (N, embed_dim) -> (N, C, H, W)."""
        gain = 1.0 + self.gain(embed)
        bias = self.bias(embed)
        return self.bn(x) * gain[:, :, None, None] + bias[:, :, None, None]


def projection_logits(
    h: torch.Tensor, labels: torch.Tensor, linear: nn.Module, embed: nn.Module
) -> torch.Tensor:
    """Projection discriminator head (Miyato & Koyama 2018, https://arxiv.org/abs/1802.05637).

    Args:
        h: (N, F) pooled features.
        labels: (N,) int64 class indices.
        linear: ``F -> 1`` layer (psi).
        embed: ``num_classes -> F`` embedding.

    Returns:
        (N,) logits ``psi(h) + <embed(y), h>``.
    """
    return linear(h).squeeze(1) + (embed(labels) * h).sum(dim=1)


def check_no_extra_kwargs(arch: str, role: str, extra: dict, defaults: dict) -> None:
    """Raise if ``extra`` holds keyword arguments the class does not know.

    Raises:
        GanaugConfigError: names the unknown keys and lists the accepted ones.
    """
    if extra:
        name = min(extra)
        raise GanaugConfigError(
            f"Arch '{arch}' {role} got unknown argument(s) {', '.join(sorted(extra))}; it accepts "
            f"{', '.join(sorted(defaults))}." + did_you_mean(name, defaults)
        )


#: The most parameters ganaug builds for one network: 2**31 (8 GiB of float32 weights), far
#: above any GAN it trains and far below what a damaged ``width`` or class count can ask for.
MAX_PARAMETERS = 2**31


def check_parameter_budget(n_params: int, where: str) -> int:
    """Return ``n_params``, or refuse a network larger than :data:`MAX_PARAMETERS`.

    Raises:
        GanaugConfigError: ``n_params`` is above the cap (the message names ``where``).
    """
    if n_params > MAX_PARAMETERS:
        raise GanaugConfigError(
            f"{where} would have {n_params:,} parameters ({n_params * 4 / 2**30:,.1f} GiB of "
            f"float32 weights); ganaug builds at most {MAX_PARAMETERS:,} (the cap). Check "
            "width, num_classes and image_size: a value this large is a typo or a damaged file.")
    return n_params


def nonfinite_tensors(state: dict[str, torch.Tensor]) -> list[str]:
    """``"name (k non-finite of n)"`` for each floating tensor of ``state`` holding NaN/Inf."""
    bad = []
    for name, tensor in state.items():
        if tensor.is_floating_point() and tensor.device.type != "meta":
            k = int((~torch.isfinite(tensor)).sum())
            if k:
                bad.append(f"{name} ({k} non-finite of {tensor.numel()})")
    return bad
