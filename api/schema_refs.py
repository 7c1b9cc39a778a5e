"""The references between type definitions: which definitions a set of roots needs (for the OpenAPI documents
and for tools/gen_openapi_definitions.py, which must not load the generated file it writes)."""
from __future__ import annotations

from typing import Any, Iterator


def refs(node: Any) -> Iterator[str]:
    """The names of the definitions a schema node refers to ($ref), at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value.rsplit("/", 1)[1]
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def closure(roots: list[str], definitions: dict[str, Any]) -> dict[str, Any]:
    """The definitions the roots name and those they refer to, transitively (names not defined are left out)."""
    kept: dict[str, Any] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name not in kept and name in definitions:
            kept[name] = definitions[name]
            todo.extend(refs(definitions[name]))
    return kept
