"""Splitting YAML (and JSON, which is YAML) files into documents, safely and quickly.

`load_documents(text, source)` returns one `Document` per non-empty document. A document that
cannot be loaded (a syntax error, invalid UTF-8, not a mapping, an alias bomb) carries an
`error` instead of an object; after a syntax error the rest of the file cannot be split
reliably, so loading stops there.

As Kubernetes' YAML handling does, unquoted timestamps stay strings (PyYAML would make them
datetimes). Anchors and aliases work, but a document whose aliases expand to more than
`MAX_EXPANDED_NODES` nodes is refused instead of being walked (a "billion laughs" bomb).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

MAX_EXPANDED_NODES = 1_000_000

_BaseLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc]
    """SafeLoader (the C one when available) that keeps timestamps as text."""


_Loader.add_constructor(
    "tag:yaml.org,2002:timestamp",
    lambda loader, node: loader.construct_scalar(node),
)


@dataclass(frozen=True, slots=True)
class Document:
    source: str  # the file path (or "-" for stdin)
    index: int  # 0-based index of the document in its file, empty documents included
    obj: dict[str, Any] | None
    error: str | None = None
    line: int = 0  # 1-based line where the document starts

    @property
    def location(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source


def load_documents(text: str | bytes, source: str) -> list[Document]:
    """All non-empty documents of a YAML or JSON stream."""
    if isinstance(text, bytes):
        data = text
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            index, line = _position(data[: err.start])
            return [Document(source, index, None, f"invalid UTF-8 at byte {err.start}", line)]
    return list(_iter_documents(text, source))


def _position(prefix: bytes) -> tuple[int, int]:
    """(document index, 1-based line) of the end of `prefix`, counting `---` separators."""
    lines = prefix.split(b"\n")
    separators = [i for i, text in enumerate(lines[:-1]) if text.rstrip() == b"---" or
                  text.startswith(b"--- ")]  # fmt: skip
    leading = bool(separators) and not any(
        t.strip() and not t.lstrip().startswith(b"#") for t in lines[: separators[0]]
    )
    return max(0, len(separators) - int(leading)), len(lines)


def _iter_documents(text: str, source: str) -> Iterator[Document]:
    loader = _Loader(text)
    check_aliases = "&" in text  # no anchors, no aliases: skip the expansion count
    index = 0
    try:
        while True:
            try:
                if not loader.check_node():
                    return
                node = loader.get_node()
            except yaml.YAMLError as err:
                yield Document(source, index, None, _describe(err), _line_of(err))
                return
            line = node.start_mark.line + 1 if node is not None else 0
            if node is None or _is_empty(node):
                index += 1
                continue
            if check_aliases:
                problem = _check_expansion(node)
                if problem is not None:
                    yield Document(source, index, None, problem, line)
                    index += 1
                    continue
            try:
                obj = loader.construct_document(node)
            except yaml.YAMLError as err:
                yield Document(source, index, None, _describe(err), _line_of(err) or line)
                return
            if isinstance(obj, dict):
                yield Document(source, index, obj, None, line)
            else:
                kind = "a list" if isinstance(obj, list) else type(obj).__name__
                yield Document(source, index, None, f"document is {kind}, not a mapping", line)
            index += 1
    finally:
        loader.dispose()


def _is_empty(node: yaml.Node) -> bool:
    return (
        isinstance(node, yaml.ScalarNode)
        and node.tag.endswith(":null")
        and node.value
        in (
            "",
            "~",
            "null",
            "Null",
            "NULL",
        )
    )


def _check_expansion(root: yaml.Node) -> str | None:
    """Refuse documents whose aliases expand past MAX_EXPANDED_NODES, or refer to themselves."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        known = sizes.get(key)
        if known is not None:
            return known
        if key in in_progress:
            raise _Recursive
        in_progress.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total += size(child)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += size(k) + size(v)
        in_progress.discard(key)
        sizes[key] = total = min(total, MAX_EXPANDED_NODES + 1)
        return total

    try:
        total = size(root)
    except _Recursive:
        return "document contains a recursive alias"
    except RecursionError:
        return "document is nested too deeply"
    if total > MAX_EXPANDED_NODES:
        return f"document expands to more than {MAX_EXPANDED_NODES} nodes through aliases"
    return None


class _Recursive(Exception):
    pass


def _line_of(err: yaml.YAMLError) -> int:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    return int(mark.line) + 1 if mark is not None else 0


def _describe(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    detail = f"{context}: {problem}" if context else problem
    return f"YAML syntax error{where}: {detail}"


def list_items(obj: dict[str, Any] | None) -> Iterator[object]:
    """The document itself, or the items of a `kind: List` / `kind: XList` (as `kubectl get
    -o yaml` writes them); nothing for an empty document."""
    if obj is None:
        return
    kind = obj.get("kind")
    items = obj.get("items")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
        yield from items
    else:
        yield obj
