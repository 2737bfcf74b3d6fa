"""Conditional GAN architectures, built through a small registry."""

from ganaug.models.layers import (
    MAX_PARAMETERS,
    check_parameter_budget,
    count_parameters,
    nonfinite_tensors,
    to_channels_last,
)
from ganaug.models.registry import (
    arch_defaults,
    arch_of,
    build_discriminator,
    build_generator,
    disc_defaults,
    estimate_parameters,
    list_archs,
    register_arch,
    supported_sizes,
)

__all__ = [
    "MAX_PARAMETERS",
    "arch_defaults",
    "arch_of",
    "build_discriminator",
    "build_generator",
    "check_parameter_budget",
    "count_parameters",
    "disc_defaults",
    "estimate_parameters",
    "list_archs",
    "nonfinite_tensors",
    "register_arch",
    "supported_sizes",
    "to_channels_last",
]
