"""GAN losses and regularisers as pure functions of discriminator logits.

Every function takes tensors and returns a scalar tensor; nothing here holds state except the
tiny :class:`LeCamEMA` helper. Formulas: hinge (Lim & Ye 2017), non-saturating (Goodfellow et al.
2014), WGAN-GP (Gulrajani et al. 2017, https://arxiv.org/abs/1704.00028), R1 (Mescheder et al.
2018, https://arxiv.org/abs/1801.04406), LeCam (Tseng et al. 2021, https://arxiv.org/abs/2104.03310), balanced consistency regularisation
(bCR; Zhao et al. 2021, https://arxiv.org/abs/2002.04724).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ganaug.errors import GanaugConfigError, did_you_mean

LossFn = Callable[..., torch.Tensor]


def hinge_d(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss ``E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]``.

    Args:
        logits_real: (N,) logits on real images.
        logits_fake: (M,) logits on generated images.

    Returns:
        Scalar loss, >= 0; 0 once real logits are >= 1 and fake logits <= -1.
    """
    return F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean()


def hinge_g(logits_fake: torch.Tensor) -> torch.Tensor:
    """Hinge generator loss ``-E[D(G(z))]`` (scalar)."""
    return -logits_fake.mean()


def ns_d(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating discriminator loss ``-E[log sigma(D(x))] - E[log(1 - sigma(D(G(z))))]``.

    Computed stably as ``E[softplus(-D(x))] + E[softplus(D(G(z)))]``, i.e. binary cross-entropy
    with target 1 on real and 0 on fake logits (scalar, >= 0).
    """
    return F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean()


def ns_g(logits_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``-E[log sigma(D(G(z)))] = E[softplus(-D(G(z)))]`` (scalar)."""
    return F.softplus(-logits_fake).mean()


def wgan_d(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Wasserstein critic loss ``E[D(G(z))] - E[D(x)]`` (scalar; add :func:`gradient_penalty`)."""
    return logits_fake.mean() - logits_real.mean()


def wgan_g(logits_fake: torch.Tensor) -> torch.Tensor:
    """Wasserstein generator loss ``-E[D(G(z))]`` (scalar)."""
    return -logits_fake.mean()


def gradient_penalty(
    discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """WGAN-GP penalty ``E[(||grad_x D(x_hat, y)||_2 - 1)^2]`` on random interpolates.

    ``x_hat = eps * real + (1 - eps) * fake`` with one ``eps ~ U[0, 1)`` per sample, drawn from the
    global torch RNG with ``real``'s dtype and device. The graph is kept (``create_graph=True``) so
    the penalty can be back-propagated into the discriminator.

    Args:
        discriminator: ``D(x, labels) -> (N,)`` logits.
        real: (N, C, H, W) real images.
        fake: (N, C, H, W) generated images (detached by the caller or not).
        labels: (N,) int64 class indices used for both.

    Returns:
        Scalar penalty, un-scaled (the caller multiplies by lambda, 10 in the paper).
    """
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), dtype=real.dtype,
                     device=real.device)
    x_hat = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    logits = discriminator(x_hat, labels)
    (grad,) = torch.autograd.grad(logits.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def r1_penalty(logits_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 penalty ``E[||grad_x D(x)||_2^2]`` on real images.

    Args:
        logits_real: (N,) logits computed from ``real``.
        real: (N, C, H, W) real images that had ``requires_grad=True`` when D ran.

    Returns:
        Scalar penalty, un-scaled (the caller multiplies by gamma / 2).
    """
    (grad,) = torch.autograd.grad(logits_real.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(dim=1).mean()


def lecam_reg(
    logits_real: torch.Tensor, logits_fake: torch.Tensor,
    ema_real: float | torch.Tensor, ema_fake: float | torch.Tensor,
) -> torch.Tensor:
    """LeCam regulariser ``E[relu(D(x) - ema_fake)^2] + E[relu(ema_real - D(G(z)))^2]``.

    Args:
        logits_real: (N,) logits on real images.
        logits_fake: (M,) logits on generated images.
        ema_real: running mean of real logits (anchor, a float or 0-d tensor).
        ema_fake: running mean of fake logits.

    Returns:
        Scalar penalty, un-scaled (the paper weighs it by 0.3 or less); 0 when every real logit is
        below ``ema_fake`` and every fake logit above ``ema_real``.
    """
    return (F.relu(logits_real - ema_fake).pow(2).mean()
            + F.relu(ema_real - logits_fake).pow(2).mean())


def consistency_reg(logits: torch.Tensor, logits_augmented: torch.Tensor) -> torch.Tensor:
    """Consistency term of bCR: ``E[(D(x) - D(T(x)))^2]`` for one side (real or fake).

    Balanced consistency regularisation adds ``lambda_real * consistency_reg(D(x), D(T(x)))
    + lambda_fake * consistency_reg(D(G(z)), D(T(G(z))))`` to the discriminator loss, where
    ``T`` is a random, semantics-preserving augmentation drawn independently of the one D
    already sees. The generator loss is unchanged. Zhao et al. use lambda = 10 for both sides.

    Args:
        logits: (N,) discriminator logits on the images.
        logits_augmented: (N,) logits on augmented copies of the same images, row for row.

    Returns:
        Scalar, >= 0; 0 when D gives each image and its augmented copy the same logit.
    """
    if logits.shape != logits_augmented.shape:
        raise GanaugConfigError(
            f"consistency_reg needs logits of the same shape, got {tuple(logits.shape)} and "
            f"{tuple(logits_augmented.shape)}: augment each image once, in the same order.")
    return (logits.float() - logits_augmented.float()).pow(2).mean()


class LeCamEMA:
    """Exponential moving averages of the mean real and fake logits (the LeCam anchors).

    Args:
        decay: EMA decay in [0, 1); the paper uses 0.99.
    """

    def __init__(self, decay: float = 0.99) -> None:
        if not 0.0 <= decay < 1.0:
            raise GanaugConfigError(
                f"LeCam EMA decay must be in [0, 1), got {decay!r}. Use 0.99 (the paper's value).")
        self.decay = float(decay)
        self.real = 0.0
        self.fake = 0.0

    def update(self, logits_real: torch.Tensor, logits_fake: torch.Tensor) -> None:
        """Fold the batch means of ``logits_real`` and ``logits_fake`` into the averages."""
        d = self.decay
        self.real = d * self.real + (1.0 - d) * float(logits_real.detach().float().mean())
        self.fake = d * self.fake + (1.0 - d) * float(logits_fake.detach().float().mean())

    def state_dict(self) -> dict[str, float]:
        """``{"decay", "real", "fake"}`` as plain floats (JSON-friendly)."""
        return {"decay": self.decay, "real": self.real, "fake": self.fake}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.decay, self.real, self.fake = (float(state["decay"]), float(state["real"]),
                                            float(state["fake"]))


LOSSES: dict[str, tuple[LossFn, LossFn]] = {
    "hinge": (hinge_d, hinge_g),
    "ns": (ns_d, ns_g),
    "wgan-gp": (wgan_d, wgan_g),
}


def get_loss(name: str) -> tuple[LossFn, LossFn]:
    """``(d_loss, g_loss)`` functions of the loss called ``name``.

    Raises:
        GanaugConfigError: unknown name; the message lists the valid ones.
    """
    if name not in LOSSES:
        raise GanaugConfigError(
            f"loss must be one of {', '.join(LOSSES)}, got {name!r}." + did_you_mean(name, LOSSES)
        )
    return LOSSES[name]
