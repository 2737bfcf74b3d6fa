"""No code path in the ganaug package may unpickle: model files are safetensors, checkpoints
are read with ``torch.load(..., weights_only=True)``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ganaug"
FORBIDDEN = [
    (re.compile(r"\bpickle\.loads?\b"), "pickle.load/loads"),
    (re.compile(r"\b(?:cloudpickle|dill|joblib)\.load"), "a pickle-based loader"),
    (re.compile(r"\bpickle\.Unpickler\b"), "pickle.Unpickler"),
    (re.compile(r"allow_pickle\s*=\s*True"), "allow_pickle=True"),
]


def _call_text(source: str, start: int) -> str:
    """The text of the call whose '(' is at ``start``, up to its matching ')'."""
    depth = 0
    for pos in range(start, len(source)):
        depth += {"(": 1, ")": -1}.get(source[pos], 0)
        if depth == 0:
            return source[start:pos + 1]
    return source[start:]


def unsafe_calls(source: str) -> list[str]:
    """Every forbidden construct in ``source`` (Python text), as short descriptions."""
    found = [f"{what} at offset {m.start()}" for pattern, what in FORBIDDEN
             for m in pattern.finditer(source)]
    for m in re.finditer(r"\btorch\.load\s*(\()", source):
        call = _call_text(source, m.start(1))
        if not re.search(r"weights_only\s*=\s*True", call):
            found.append(f"torch.load without weights_only=True: {call[:80]}")
    return found


@pytest.mark.parametrize("snippet,bad", [
    ("x = pickle.loads(b)", True),
    ("x = pickle.load(f)", True),
    ("np.load(p, allow_pickle=True)", True),
    ("torch.load(path)", True),
    ("torch.load(path, weights_only=False)", True),
    ("torch.load(\n    path, map_location='cpu',\n    weights_only=True,\n)", False),
    ("torch.load(open_fn(p), weights_only=True)", False),
    ("np.load(p)", False),
    ("safetensors.torch.load_file(p)", False),
])
def test_detector(snippet, bad):
    assert bool(unsafe_calls(snippet)) is bad


def test_package_never_unpickles():
    sources = sorted(PACKAGE.rglob("*.py"))
    assert PACKAGE / "io.py" in sources
    problems = {str(p.relative_to(PACKAGE)): unsafe_calls(p.read_text()) for p in sources}
    problems = {k: v for k, v in problems.items() if v}
    assert problems == {}
