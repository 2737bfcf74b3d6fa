"""GAN augmentation as an albumentations transform: see :mod:`ganaug.augment.albumentations`.

This is the documented import path (``import ganaug.albumentations as GA``); import it before
``A.from_dict``/``A.load`` so albumentations knows the class.
"""

from ganaug.augment.albumentations import GANAugment

__all__ = ["GANAugment"]
