"""The public surface of ``ganaug``: the name table, ``__all__``, the typing mirror, ``py.typed``."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import ganaug
import ganaug.errors

ROOT = Path(ganaug.__file__).resolve().parents[1]
INIT = Path(ganaug.__file__)

# ganaug.__all__ before the re-layout (issue 11): it must not lose, gain or reorder a name.
ALL_BEFORE = [
    "__version__", "GanaugError", "GanaugDataError", "GanaugConfigError", "GanaugModelError",
    "GanaugTrainingError", "LabeledImages", "load_data", "Generator", "save", "load",
    "read_metadata", "describe_model_file", "export_image_folder", "TrainConfig", "Trainer",
    "SampleBank", "GANAugment", "BatchMixer", "with_labels", "SyntheticDataset", "MixedDataset",
    "build_generator", "build_discriminator", "list_archs",
]


def _type_checking_imports() -> dict[str, str]:
    """``{name: module}`` of the imports under ``if TYPE_CHECKING:`` in ganaug/__init__.py."""
    tree = ast.parse(INIT.read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If)
                 and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
    out = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom), ast.dump(node)
        for alias in node.names:
            assert alias.asname in (None, alias.name), "re-export under the same name"
            out[alias.name] = node.module
    return out


def test_all_keeps_exactly_the_old_names():
    assert ganaug.__all__ == ALL_BEFORE


def test_every_public_name_resolves_and_is_listed_by_dir():
    for name in ganaug.__all__:
        assert getattr(ganaug, name) is not None, name
    assert set(ganaug.__all__) <= set(dir(ganaug))
    assert ganaug.GanaugError is ganaug.errors.GanaugError
    with pytest.raises(AttributeError, match="module 'ganaug' has no attribute 'nope'"):
        ganaug.nope  # noqa: B018


def test_every_listed_submodule_imports():
    for name in sorted(ganaug._SUBMODULES):
        assert getattr(ganaug, name) is importlib.import_module(f"ganaug.{name}")


def test_type_checking_mirror_names_the_same_objects_as_the_table():
    mirror = _type_checking_imports()
    assert set(mirror) == set(ganaug._LAZY)
    for name, module in mirror.items():
        # A module that does not exist yet (a subpackage still being moved) is checked once it
        # does; ganaug.<name> must then be that module's object.
        if importlib.util.find_spec(module) is not None:
            assert getattr(importlib.import_module(module), name) is getattr(ganaug, name), name


def test_import_ganaug_stays_light():
    code = "import sys, ganaug; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_package_ships_py_typed():
    assert (INIT.parent / "py.typed").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '[tool.setuptools.package-data]\nganaug = ["py.typed"]' in pyproject
