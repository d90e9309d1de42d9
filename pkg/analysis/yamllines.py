"""Where each document and each field of a YAML stream is, for `file:line` in messages.

Istio's file source records, per document, the line its chunk starts at (the first line after
a `---` separator that is not empty, comments included) and, per field, the line of its value
(`BuildFieldPathMap`). `document_lines` gives the first, `field_lines` the second; paths are
written as in validation errors: `spec.http[0].route[1].destination.host`.
"""

from __future__ import annotations

from collections.abc import Iterator

import yaml

MAX_FIELDS = 100_000  # per document; an alias-heavy document is mapped only this far

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def chunk_start(lines: list[str], node_line: int) -> int:
    """Istio's start line of the chunk holding a document whose first node is at `node_line`
    (1-based): the first non-empty line after the last `---` separator before it."""
    separator = 0
    for index in range(min(node_line, len(lines)) - 1, -1, -1):
        text = lines[index]
        if text.startswith("---") and not text[3:].strip():
            separator = index + 1
            break
    for index in range(separator, min(node_line, len(lines))):
        if lines[index].rstrip("\r") != "":
            return index + 1
    return node_line


def document_nodes(text: str) -> Iterator[yaml.Node]:
    """The root node of every document, in order, until the first syntax error."""
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                yield node
    except yaml.YAMLError:
        return
    finally:
        loader.dispose()


def field_lines(root: yaml.Node, prefix: str = "") -> dict[str, int]:
    """path → 1-based line for every field below `root` (scalars: the value's line; mappings
    and sequences: the key's line)."""
    out: dict[str, int] = {}
    # An explicit stack (not recursion); `active` guards against recursive aliases.
    stack: list[tuple[yaml.Node, str, frozenset[int]]] = [(root, prefix, frozenset())]
    while stack and len(out) < MAX_FIELDS:
        node, path, active = stack.pop()
        if id(node) in active:
            continue
        inner = active | {id(node)}
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    continue
                child = f"{path}.{key.value}" if path else str(key.value)
                if isinstance(value, yaml.ScalarNode):
                    out[child] = value.start_mark.line + 1
                else:
                    out[child] = key.start_mark.line + 1
                    stack.append((value, child, inner))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = f"{path}[{index}]"
                out[child] = item.start_mark.line + 1
                if not isinstance(item, yaml.ScalarNode):
                    stack.append((item, child, inner))
    return out
