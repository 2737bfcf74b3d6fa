"""Training a class-conditional GAN: ``Trainer(cfg).fit()`` and :func:`train_or_resume`.

``trainer.py`` holds the loop, ``step.py`` the GAN maths (:class:`GANStep`), ``run_dir.py`` the
run folder and resume, ``callbacks.py`` logging, checkpoints, samples, the NaN guard and
signals, ``batches.py`` the real batches and ``distributed.py`` the DDP plumbing.
"""

from ganaug.training.batches import BatchOrder, RealBatchSource
from ganaug.training.callbacks import (
    Callback,
    Checkpointer,
    DivergenceGuard,
    GracefulStop,
    MetricsLogger,
    SampleWriter,
)
from ganaug.training.run_dir import RunDir
from ganaug.training.step import GANStep, ema_decay_at, ema_update, split_arch_kwargs
from ganaug.training.trainer import Trainer, train_or_resume

__all__ = [
    "BatchOrder",
    "Callback",
    "Checkpointer",
    "DivergenceGuard",
    "GANStep",
    "GracefulStop",
    "MetricsLogger",
    "RealBatchSource",
    "RunDir",
    "SampleWriter",
    "Trainer",
    "ema_decay_at",
    "ema_update",
    "split_arch_kwargs",
    "train_or_resume",
]
