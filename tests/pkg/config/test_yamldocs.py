from __future__ import annotations

from pkg.config.yamldocs import MAX_EXPANDED_NODES, load_documents

TWO_DOCS = b"""\
---
# only a comment
---
apiVersion: v1
kind: Namespace
metadata: {name: a, creationTimestamp: 2024-05-01T10:00:00Z}
---
---
apiVersion: v1
kind: Namespace
metadata: {name: b}
"""


def test_documents_with_indexes_and_lines() -> None:
    docs = load_documents(TWO_DOCS, "ns.yaml")
    assert [(d.index, d.line, d.obj["metadata"]["name"] if d.obj else None) for d in docs] == [
        (1, 4, "a"),
        (3, 9, "b"),
    ]
    assert all(d.source == "ns.yaml" and d.error is None for d in docs)
    assert docs[0].location == "ns.yaml:4"


def test_timestamps_stay_strings() -> None:
    (doc, _) = load_documents(TWO_DOCS, "ns.yaml")
    assert doc.obj is not None
    assert doc.obj["metadata"]["creationTimestamp"] == "2024-05-01T10:00:00Z"


def test_empty_input() -> None:
    assert load_documents("", "e.yaml") == []
    assert load_documents("---\n# nothing\n---\n", "e.yaml") == []


def test_syntax_error_names_the_document_and_stops() -> None:
    text = "a: 1\n---\nb: [1, 2\n---\nc: 3\n"
    docs = load_documents(text, "bad.yaml")
    assert docs[0].obj == {"a": 1}
    assert docs[1].index == 1
    assert docs[1].obj is None
    assert docs[1].error is not None
    assert "YAML syntax error at line" in docs[1].error
    assert len(docs) == 2


def test_invalid_utf8() -> None:
    (doc,) = load_documents(b"a: \xff\xfe\n", "bin.yaml")
    assert doc.obj is None
    assert doc.error == "invalid UTF-8 at byte 3"


def test_byte_order_mark_is_ignored() -> None:
    (doc,) = load_documents("\ufeffa: 1\n".encode(), "bom.yaml")
    assert doc.obj == {"a": 1}


def test_non_mapping_documents() -> None:
    docs = load_documents("- a\n---\njust text\n", "x.yaml")
    assert [d.error for d in docs] == [
        "document is a list, not a mapping",
        "document is str, not a mapping",
    ]


def test_json_is_yaml() -> None:
    (doc,) = load_documents('{"apiVersion": "v1", "kind": "Namespace"}', "x.json")
    assert doc.obj == {"apiVersion": "v1", "kind": "Namespace"}


def test_ordinary_anchors_and_aliases_work() -> None:
    (doc,) = load_documents("a: &x {k: v}\nb: *x\nc:\n  <<: *x\n  z: 1\n", "a.yaml")
    assert doc.obj == {"a": {"k": "v"}, "b": {"k": "v"}, "c": {"k": "v", "z": 1}}


def test_alias_bombs_are_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    docs = load_documents("\n".join(lines) + "\n---\nok: 1\n", "bomb.yaml")
    assert docs[0].obj is None
    assert (
        docs[0].error == f"document expands to more than {MAX_EXPANDED_NODES} nodes through aliases"
    )
    assert docs[1].obj == {"ok": 1}  # the next document still loads


def test_recursive_aliases_are_refused() -> None:
    (doc,) = load_documents("a: &a [*a]\n", "r.yaml")
    assert doc.error == "document contains a recursive alias"
