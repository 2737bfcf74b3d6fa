"""Reading YAML a user wrote (``--config``, a run's ``config.yaml``, ``--gan-config``,
``--model-kwargs``), with what ``yaml.safe_load`` lets through refused.

:func:`safe_load` is ``yaml.safe_load`` that also refuses, as a ``yaml.YAMLError`` the
callers already turn into one clear message:

* a key given twice in one mapping (PyYAML silently keeps the last one; YAML says keys are
  unique). A merge key (``<<: *base``) is no duplicate: its keys are overridden, as YAML says;
* aliases that expand to more than :data:`MAX_VALUES` values (a "billion laughs": 300 bytes
  that become 10**8 values once copied) or that refer to a value holding them;
* nesting too deep for the parser (a ``RecursionError`` traceback);
* bytes that are no UTF-8 text (UTF-16 with a byte-order mark is read, as PyYAML reads it).

The composed node graph is checked before any Python object is built, so nothing expands.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

#: The most values (scalars, lists, mappings) a document may hold once its aliases are expanded.
MAX_VALUES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlRefused(yaml.MarkedYAMLError):
    """Valid to PyYAML, refused by ganaug; ``problem`` says why."""


def safe_load(text: str | bytes) -> Any:
    """``yaml.safe_load(text)`` with the refusals of this module.

    Raises:
        yaml.YAMLError: as ``yaml.safe_load``; :class:`YamlRefused` for a duplicate key, an
            alias bomb or a self-referencing alias, too deep a nesting.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_graph(node)
        return loader.construct_document(node)
    except RecursionError:
        raise YamlRefused(problem="it is nested too deeply for the YAML parser (hundreds of "
                                  "levels of lists or mappings); write the values flat") from None
    finally:
        loader.dispose()


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return [] if isinstance(node, ScalarNode) else list(node.value)


def _check_graph(root: Node) -> None:
    """Refuse duplicate keys, and aliases that expand too far or into themselves (iteratively:
    each distinct node is visited once, so an alias bomb costs its text's size)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            open_nodes.discard(id(node))
            sizes[id(node)] = size = 1 + sum(sizes[id(c)] for c in _children(node))
            if size > MAX_VALUES:
                raise YamlRefused(
                    problem=f"its aliases (*name) expand to more than {MAX_VALUES:,} values "
                            "(a 'billion laughs' document, which would take gigabytes); write "
                            "the values out instead of repeating aliases",
                    problem_mark=node.start_mark)
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_nodes:
            raise YamlRefused(problem="an alias (*name) refers to a value that holds it, so the "
                                      "value would never end; write the values out",
                              problem_mark=node.start_mark)
        if isinstance(node, MappingNode):
            _check_unique_keys(node)
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)


def _check_unique_keys(node: MappingNode) -> None:
    seen: dict[tuple[str, str], Node] = {}
    for key, _ in node.value:
        if not isinstance(key, ScalarNode) or key.tag == _MERGE_TAG:
            continue
        first = seen.setdefault((key.tag, key.value), key)
        if first is not key:
            raise YamlRefused(
                problem=f"it gives {key.value!r:.80} twice (lines {first.start_mark.line + 1} "
                        f"and {key.start_mark.line + 1}) in one mapping, where YAML keys are "
                        "unique and PyYAML would silently keep the last one. Keep one",
                problem_mark=key.start_mark)


def yaml_problem(err: Exception) -> tuple[str, str]:
    """PyYAML's multi-line error as ``(" at line L, column C" or "", "the problem")``.

    Our errors are one paragraph; PyYAML's message quotes the source over several lines.
    """
    if isinstance(err, yaml.reader.ReaderError):  # bytes that are no text
        return "", (f"byte {err.position} is not UTF-8 text ({err.reason}); save the file as "
                    "UTF-8")
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return where, getattr(err, "problem", None) or "cannot be parsed"
