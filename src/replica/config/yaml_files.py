"""Reading YAML strictly: duplicate keys are errors, not silently "last one wins" (PyYAML's default)."""

from __future__ import annotations

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


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """Return the mapping at the top of a YAML file.

    Raises ValueError with a one-line reason (with line number) for YAML syntax errors, duplicate keys, or a top
    level that is not a mapping; UnreadableFile (a ValueError) when the file cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UnreadableFile(f"cannot read file: {error.strerror}") from None
    try:
        document = yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ValueError(f"{where}{error.problem}") from None
    except yaml.YAMLError as error:
        raise ValueError(str(error).splitlines()[0]) from None
    if not isinstance(document, dict):
        raise ValueError("expected a mapping of fields at the top of the file")
    return document


def yaml_version() -> str:
    """Return the version of the YAML parser (the configuration cache is keyed by it)."""
    return f"{yaml.__version__} {'libyaml' if yaml.__with_libyaml__ else 'python'}"
