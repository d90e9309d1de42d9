"""Run analyzers over an input and return Istio's message list: filtered to the analyzed
namespace, minus suppressions, sorted and de-duplicated (`diag.Messages.SortedDedupedCopy`).

Suppressions are Istio's: `--suppress CODE=<Kind> <name glob>` (the glob is matched against the
origin `<Kind> <ns>/<name>` and against `<Kind> <name>.<ns>`), and the annotation
`galley.istio.io/analyze-suppress: "CODE,CODE"` (or `*`) on the resource itself. An analyzer
that fails reports IST0001 InternalError instead of stopping the run.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pkg.analysis import messages as m
from pkg.analysis.analyzers import ALL, Analyzer
from pkg.analysis.inputs import AnalysisInput
from pkg.analysis.messages import Message

SUPPRESS_ANNOTATION = "galley.istio.io/analyze-suppress"


@dataclass(frozen=True, slots=True)
class Suppression:
    code: str
    resource: str  # a glob over "<Kind> <ns>/<name>"

    @classmethod
    def parse(cls, text: str) -> Suppression:
        """`IST0102=DestinationRule primary-dr.default`; ValueError when malformed."""
        parts = text.split("=")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise ValueError(
                f"{text} is not a valid suppression value. See istioctl analyze --help"
            )
        return cls(parts[0], parts[1])

    def matches(self, message: Message) -> bool:
        ref = message.resource
        if ref is None or message.type.code != self.code:
            return False
        dotted = f"{ref.kind} {ref.name}.{ref.namespace}" if ref.namespace else ref.friendly_name
        return any(fnmatch.fnmatchcase(n, self.resource) for n in (ref.friendly_name, dotted))


@dataclass(frozen=True, slots=True)
class Result:
    messages: tuple[Message, ...]
    executed: tuple[str, ...]


def select(names: Sequence[str]) -> tuple[Analyzer, ...]:
    """The analyzers named (all when none); ValueError naming an unknown one."""
    if not names:
        return ALL
    known = {a.name: a for a in ALL}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown analyzer(s): {', '.join(unknown)} (see istioctl analyze -L)")
    return tuple(known[n] for n in names)


def analyze(
    inp: AnalysisInput,
    *,
    namespace: str | None,
    suppressions: Iterable[Suppression] = (),
    analyzers: Sequence[Analyzer] = ALL,
) -> Result:
    """All messages of `analyzers` on `inp`; only for resources of `namespace` unless None."""
    found: list[Message] = []
    for analyzer in analyzers:
        try:
            found.extend(analyzer.run(inp))
        except Exception as err:  # one broken analyzer must not hide the others' findings
            detail = f"analyzer {analyzer.name} failed: {type(err).__name__}: {err}"
            found.append(Message(m.INTERNAL_ERROR, (detail,)))
    suppressed = _annotated_suppressions(inp)
    rules = tuple(suppressions)
    kept = [
        msg
        for msg in found
        if _in_namespace(msg, namespace)
        and not _annotation_suppresses(msg, suppressed)
        and not any(rule.matches(msg) for rule in rules)
    ]
    return Result(sorted_deduped(kept), tuple(a.name for a in analyzers))


def sorted_deduped(found: Iterable[Message]) -> tuple[Message, ...]:
    ordered = sorted(found, key=_sort_key)
    out: list[Message] = []
    for msg in ordered:
        if out and str(out[-1]) == str(msg):
            continue
        out.append(msg)
    return tuple(out)


def _sort_key(msg: Message) -> tuple[int, str, int, str, str]:
    ref = msg.resource
    return (
        msg.type.level.value,
        msg.type.code,
        0 if ref is None else 1,
        "" if ref is None else ref.comparator,
        str(msg),
    )


def _in_namespace(msg: Message, namespace: str | None) -> bool:
    ref = msg.resource
    return namespace is None or ref is None or not ref.namespace or ref.namespace == namespace


def _annotated_suppressions(inp: AnalysisInput) -> dict[tuple[str, str, str], set[str]]:
    out: dict[tuple[str, str, str], set[str]] = {}
    for r in inp.resources:
        value = r.annotations.get(SUPPRESS_ANNOTATION, "")
        if value:
            out[(r.kind, r.namespace, r.name)] = {c.strip() for c in value.split(",")}
    return out


def _annotation_suppresses(msg: Message, suppressed: dict[tuple[str, str, str], set[str]]) -> bool:
    ref = msg.resource
    if ref is None:
        return False
    codes = suppressed.get((ref.kind, ref.namespace, ref.name), set())
    return "*" in codes or msg.type.code in codes
