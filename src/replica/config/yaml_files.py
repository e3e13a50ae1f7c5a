"""Reading YAML strictly: duplicate keys are errors, not silently "last one wins" (PyYAML's default).

Every problem is reported with the line it is about: a YAML problem carries its own, and a validation problem
found later is placed by `YamlDocument.line_of`, which walks the composed node tree (kept beside the data, at no
extra cost: loading composes it anyway) down the problem's location.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a plain name, not {type(key).__name__}", key_node.start_mark
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}' (first on line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class UnreadableFile(ValueError):
    """The file could not be read at all (permissions, I/O, no descriptors left): nothing is known of its content."""


class YamlProblem(ValueError):
    """The file is not valid YAML, or its top is not a mapping: the reason and the line (from 1) it is about."""

    def __init__(self, line: int, reason: str) -> None:
        self.line = line
        self.reason = reason
        super().__init__(f"line {line}: {reason}")


@dataclass(frozen=True)
class YamlDocument:
    """The mapping at the top of a YAML file, and the node tree it was built from (for the lines of problems)."""

    mapping: dict[str, Any]
    root: yaml.Node

    def line_of(self, location: Sequence[int | str], skip: Container[str] = ()) -> int:
        """Return the line (from 1) of the value at `location` (keys and list indexes, as pydantic reports them).

        A part of the location that is not in the file is skipped when listed in `skip` (the tag of a tagged
        union, which pydantic inserts); any other missing part (a required field left out) stops the walk at the
        line of the deepest part that is there: the mapping that lacks the field.
        """
        node = self.root
        line = node.start_mark.line + 1
        for part in location:
            found = _child(node, part)
            if found is None:
                if isinstance(part, str) and part in skip:
                    continue
                break
            line, node = found
        return line


def _child(node: yaml.Node, part: int | str) -> tuple[int, yaml.Node] | None:
    """Return the line of `part` in `node` (a key's own line, an item's first line) and its value node."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                return key_node.start_mark.line + 1, value_node
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        item = node.value[part]
        return item.start_mark.line + 1, item
    return None


def read_yaml_document(path: Path) -> YamlDocument:
    """Return the mapping at the top of a YAML file, with its node tree.

    Raises YamlProblem (a ValueError, with the line) for YAML syntax errors, duplicate keys, text that is not
    UTF-8, or a top level that is not a mapping; UnreadableFile (a ValueError) when the file cannot be read.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UnreadableFile(f"cannot read file: {error.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise YamlProblem(line, f"not UTF-8 text (byte 0x{data[error.start]:02x})") from None
    loader = _StrictLoader(text)
    try:
        root = loader.get_single_node()
        document = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        raise YamlProblem(mark.line + 1 if mark is not None else 1, str(error.problem or error.context)) from None
    except yaml.reader.ReaderError as error:
        raise YamlProblem(text.count("\n", 0, max(error.position, 0)) + 1, error.reason) from None
    except yaml.YAMLError as error:
        raise YamlProblem(1, str(error).splitlines()[0]) from None
    finally:
        loader.dispose()
    if root is None or not isinstance(document, dict):
        line = root.start_mark.line + 1 if root is not None else 1
        raise YamlProblem(line, "expected a mapping of fields at the top of the file")
    return YamlDocument(document, root)


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """Return the mapping at the top of a YAML file (see `read_yaml_document` for what it raises)."""
    return read_yaml_document(path).mapping


def yaml_version() -> str:
    """Return the version of the YAML parser (the configuration cache is keyed by it)."""
    return f"{yaml.__version__} {'libyaml' if yaml.__with_libyaml__ else 'python'}"
