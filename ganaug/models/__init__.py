"""Conditional GAN architectures, built through a small registry."""

from ganaug.models.registry import (
    arch_defaults,
    build_discriminator,
    build_generator,
    list_archs,
    register_arch,
)

__all__ = ["arch_defaults", "build_discriminator", "build_generator", "list_archs", "register_arch"]
