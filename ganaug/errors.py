"""Errors a user can cause.

Every error ganaug raises on purpose is a :class:`GanaugError`. Each subclass also derives from
the matching builtin, so ``except ValueError`` keeps working for callers who do not know ganaug.
Messages say what was wrong, the value received, what is accepted, and how to fix it.
"""

from __future__ import annotations


class GanaugError(Exception):
    """Base class of every error ganaug raises on purpose."""


class GanaugDataError(GanaugError, ValueError):
    """A dataset spec, a data file or an image folder cannot be used as asked."""


class GanaugConfigError(GanaugError, ValueError):
    """A configuration value (CLI flag, YAML field, argument) is invalid."""


class GanaugTypeError(GanaugConfigError, TypeError):
    """An argument of the wrong kind (a set where an ordered sequence is needed, a string where
    a number is). Also a ``ValueError``, as the config errors it refines were."""


class GanaugModelError(GanaugError, ValueError):
    """A model file is missing, corrupt, foreign, or does not match its architecture."""


class GanaugTrainingError(GanaugError, RuntimeError):
    """Training cannot go on (diverged, interrupted resume, inconsistent run folder)."""


def did_you_mean(name: str, choices) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or ``""``."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f" Did you mean '{close[0]}'?" if close else ""
