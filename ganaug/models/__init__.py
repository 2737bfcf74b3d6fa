"""Conditional GAN architectures, built through a small registry."""

from ganaug.models.layers import count_parameters
from ganaug.models.registry import (
    arch_defaults,
    arch_of,
    build_discriminator,
    build_generator,
    disc_defaults,
    list_archs,
    register_arch,
)

__all__ = [
    "arch_defaults",
    "arch_of",
    "build_discriminator",
    "build_generator",
    "count_parameters",
    "disc_defaults",
    "list_archs",
    "register_arch",
]
