"""The public surface of ``ganaug``: the name table, ``__all__``, the typing mirror, ``py.typed``."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pydoc
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
# Issue 31 added the recipe's names, between MixedDataset and build_generator.
ALL_NOW = [*ALL_BEFORE[:ALL_BEFORE.index("build_generator")],
           "Teacher", "Distiller", "weighted_loss", "ClassBalancedSampler",
           *ALL_BEFORE[ALL_BEFORE.index("build_generator"):]]


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


def test_all_keeps_the_old_names_in_order_and_adds_the_recipe():
    assert ganaug.__all__ == ALL_NOW
    assert [name for name in ganaug.__all__ if name in ALL_BEFORE] == ALL_BEFORE


def test_the_recipe_names_are_top_level():
    from ganaug import augment

    assert ganaug.Teacher is augment.Teacher
    assert ganaug.Distiller is augment.Distiller
    assert ganaug.weighted_loss is augment.weighted_loss
    assert ganaug.ClassBalancedSampler is augment.ClassBalancedSampler
    for name in ("Teacher", "Distiller", "weighted_loss", "ClassBalancedSampler"):
        assert name in ganaug.__all__ and name in dir(ganaug), name


def test_dir_lists_only_the_public_names_and_the_submodules():
    assert dir(ganaug) == sorted(set(ganaug.__all__) | ganaug._SUBMODULES)
    assert "os" not in dir(ganaug) and "importlib" not in dir(ganaug)
    assert not [name for name in dir(ganaug) if name.startswith("_") and name != "__version__"]


def test_augment_all_lists_the_new_api():
    from ganaug import augment

    assert {"ClassMap", "Distiller", "ClassBalancedSampler", "Teacher",
            "weighted_loss"} <= set(augment.__all__)
    for gone in ("check_same_classes", "label_to_index", "per_class_counts", "Replacer"):
        assert gone not in augment.__all__, gone
    assert not hasattr(augment, "Replacer")
    for name in augment.__all__:
        assert getattr(augment, name) is not None, name


# help(cls) must show the class's own documentation, not the "Initialize internal Module state"
# that nn.Module.__init__ would lend a subclass whose __init__ has no docstring.
MODULE_INIT_DOC = "Initialize internal Module state"


@pytest.mark.parametrize("name", [
    "GANAugment", "BatchMixer", "SyntheticDataset", "MixedDataset", "Teacher", "Distiller",
    "Generator",
])
def test_help_of_the_public_classes_is_their_own(name):
    cls = getattr(ganaug, name)
    own_doc = cls.__dict__.get("__doc__")
    assert own_doc and own_doc.strip(), f"{name} has no class docstring"
    init_doc = inspect.getdoc(cls.__init__) or ""
    assert MODULE_INIT_DOC not in init_doc, f"{name}.__init__: {init_doc[:80]!r}"
    text = pydoc.render_doc(cls, renderer=pydoc.plaintext)
    assert MODULE_INIT_DOC not in text
    assert inspect.cleandoc(own_doc).splitlines()[0] in text


@pytest.mark.parametrize("name", [
    "GANAugment", "BatchMixer", "SyntheticDataset", "MixedDataset", "Generator",
    "Teacher", "Distiller",
])
def test_init_docstrings_are_their_own(name):
    cls = getattr(ganaug, name)
    init = cls.__dict__.get("__init__")
    assert init is not None, f"{name} defines no __init__"
    assert init.__doc__ and init.__doc__.strip(), f"{name}.__init__ has no docstring"
    assert inspect.getdoc(cls.__init__) == inspect.cleandoc(init.__doc__)
    assert f":class:`{name}`" in init.__doc__ or name in init.__doc__


def _augmenters():
    import ganaug.albumentations as alb

    return {"GANAugment": ganaug.GANAugment, "albumentations.GANAugment": alb.GANAugment,
            "BatchMixer": ganaug.BatchMixer, "SyntheticDataset": ganaug.SyntheticDataset,
            "MixedDataset": ganaug.MixedDataset, "Teacher": ganaug.Teacher}


def test_augmenter_constructors_take_at_most_ten_parameters():
    sizes = {name: len(inspect.signature(cls).parameters) for name, cls in _augmenters().items()}
    assert all(1 <= n <= 10 for n in sizes.values()), sizes
    # inspect.signature(cls) leaves self out; the __init__'s own list has it first
    for name, cls in _augmenters().items():
        params = list(inspect.signature(cls.__init__).parameters)
        assert params[0] == "self" and len(params) - 1 == sizes[name], name


def test_the_five_augmenters_take_the_generator_first():
    firsts = {name: next(iter(inspect.signature(cls).parameters))
              for name, cls in _augmenters().items() if name != "Teacher"}
    # named `generator` (not generator_or_path, generator_path, synthetic_or_generator, ...)
    assert firsts == dict.fromkeys(["GANAugment", "albumentations.GANAugment", "BatchMixer",
                                    "SyntheticDataset", "MixedDataset"], "generator")
    # MixedDataset appends to the real dataset that follows the generator
    assert list(inspect.signature(ganaug.MixedDataset).parameters)[:2] == ["generator", "real"]


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
