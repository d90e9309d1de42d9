"""A small expander for Istio's xDS benchmark templates (pilot/pkg/xds/testdata/benchmarks).

Those files are Go `text/template` with a few sprig functions. Only what they use is supported:

- `{{- range $i := until .Services }} … {{- end }}` (sprig `until N` = 0…N-1; `$i` is the item),
- `{{$i}}`, `{{div $i 255 }}`, `{{mod $j $.Services}}` (integer division and modulo),
- `.Services`, `.Instances`, `$.Services`, `$.Instances`,
- whitespace trimming: `{{-` removes all whitespace before the action, `-}}` all after it.

Anything else raises `TemplateError` instead of being guessed at.

    python benchmarks/render.py --services 100 --out DIR [TEMPLATE ...]

renders every given template (default: all of ../shared/conformance/xds-benchmarks/) into
DIR/<name>.yaml.

    python benchmarks/render.py --services 10 --check [TEMPLATE ...]

renders each template into a directory of its own, starts istiod on it, and checks that
istiod accepts it: /debug/push_status has no `problems`, and /debug/registryz lists every
host of the rendered ServiceEntries and Kubernetes Services.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_DIR = REPO_ROOT.parent / "shared" / "conformance" / "xds-benchmarks"

_ACTION = re.compile(r"\{\{(-\s)?\s*(.*?)\s*(\s-)?\}\}", re.DOTALL)
_RANGE = re.compile(r"range\s+\$(\w+)\s*:=\s*(.+)", re.DOTALL)
_INT = re.compile(r"-?\d+")


class TemplateError(ValueError):
    pass


@dataclass
class _Text:
    text: str


@dataclass
class _Expr:
    expr: str


@dataclass
class _Range:
    var: str
    expr: str
    body: list[_Node] = field(default_factory=list)


_Node = _Text | _Expr | _Range


def _tokenize(source: str) -> list[_Text | tuple[str, str]]:
    """Split into text and ("action", body), applying `{{-`/`-}}` trimming to the text."""
    out: list[_Text | tuple[str, str]] = []
    pos = 0
    trim_next = False
    for m in _ACTION.finditer(source):
        text = source[pos : m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        out.append(_Text(text))
        out.append(("action", m.group(2)))
        trim_next = bool(m.group(3))
        pos = m.end()
    tail = source[pos:]
    out.append(_Text(tail.lstrip() if trim_next else tail))
    if "{{" in "".join(t.text for t in out if isinstance(t, _Text)):
        raise TemplateError("unterminated or malformed {{ action")
    return out


def _parse(tokens: list[_Text | tuple[str, str]]) -> list[_Node]:
    root: list[_Node] = []
    stack: list[list[_Node]] = [root]
    for token in tokens:
        if isinstance(token, _Text):
            if token.text:
                stack[-1].append(token)
            continue
        body = token[1]
        if body.startswith("/*"):
            continue  # a template comment
        if body == "end":
            if len(stack) == 1:
                raise TemplateError("{{end}} without {{range}}")
            stack.pop()
            continue
        m = _RANGE.fullmatch(body)
        if m:
            node = _Range(m.group(1), m.group(2))
            stack[-1].append(node)
            stack.append(node.body)
            continue
        if body.split()[0] in ("range", "if", "else", "with", "define", "template", "block"):
            raise TemplateError(f"unsupported action {{{{{body}}}}}")
        stack[-1].append(_Expr(body))
    if len(stack) != 1:
        raise TemplateError("{{range}} without {{end}}")
    return root


def _value(word: str, data: Mapping[str, int], scope: Mapping[str, int]) -> int:
    if _INT.fullmatch(word):
        return int(word)
    if word.startswith("$."):
        word = word[1:]
    if word.startswith("."):
        key = word[1:]
        if key not in data:
            raise TemplateError(f"no value for {word}")
        return data[key]
    if word.startswith("$"):
        key = word[1:]
        if key not in scope:
            raise TemplateError(f"undefined variable {word}")
        return scope[key]
    raise TemplateError(f"cannot evaluate {word!r}")


def _evaluate(expr: str, data: Mapping[str, int], scope: Mapping[str, int]) -> int | list[int]:
    words = expr.split()
    if not words:
        raise TemplateError("empty action")
    fn, args = words[0], [_value(w, data, scope) for w in words[1:]]
    if fn == "until" and len(args) == 1:
        return list(range(args[0]))
    if fn == "div" and len(args) == 2:
        return args[0] // args[1]
    if fn == "mod" and len(args) == 2:
        return args[0] % args[1]
    if len(words) == 1:
        return _value(fn, data, scope)
    raise TemplateError(f"unsupported expression {expr!r}")


def _execute(
    nodes: Sequence[_Node], data: Mapping[str, int], scope: dict[str, int], out: list[str]
) -> None:
    for node in nodes:
        if isinstance(node, _Text):
            out.append(node.text)
        elif isinstance(node, _Expr):
            out.append(str(_evaluate(node.expr, data, scope)))
        else:
            items = _evaluate(node.expr, data, scope)
            if not isinstance(items, list):
                raise TemplateError(f"range over a non-list: {node.expr!r}")
            for item in items:
                _execute(node.body, data, {**scope, node.var: item}, out)


def render(source: str, services: int, instances: int | None = None) -> str:
    """Render one template for `services` services (and `instances` workload instances,
    default = `services`)."""
    data = {"Services": services, "Instances": services if instances is None else instances}
    out: list[str] = []
    _execute(_parse(_tokenize(source)), data, {}, out)
    return "".join(out)


def templates(directory: Path = TEMPLATE_DIR) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))


def resolve_template(name: str | Path) -> Path:
    """A template by path, or by file name (with or without .yaml) in TEMPLATE_DIR."""
    path = Path(name)
    if path.is_file():
        return path
    candidate = TEMPLATE_DIR / (path.name if path.suffix else f"{path.name}.yaml")
    if candidate.is_file():
        return candidate
    raise FileNotFoundError(f"no template {name} (looked in {TEMPLATE_DIR})")


def render_to(template: Path, out_dir: Path, services: int, instances: int | None = None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{template.stem}.yaml"
    target.write_text(render(template.read_text(), services, instances))
    return target


def expected_hosts(rendered: str) -> set[str]:
    """Service hostnames a registry must show for a rendered file: ServiceEntry hosts and
    Kubernetes Services (NAME.NS.svc.cluster.local)."""
    hosts: set[str] = set()
    for doc in yaml.safe_load_all(rendered):
        if not isinstance(doc, dict):
            continue
        kind, meta = doc.get("kind"), doc.get("metadata") or {}
        if kind == "ServiceEntry":
            hosts.update((doc.get("spec") or {}).get("hosts") or [])
        elif kind == "Service" and doc.get("apiVersion") == "v1":
            hosts.add(f"{meta['name']}.{meta.get('namespace', 'default')}.svc.cluster.local")
    return hosts


@dataclass
class CheckResult:
    template: str
    documents: int
    services: int
    problems: list[str]
    missing_hosts: list[str]
    error: str = ""

    @property
    def ok(self) -> bool:
        return not (self.problems or self.missing_hosts or self.error)


def check_template(
    template: Path, workdir: Path, services: int, instances: int | None = None
) -> CheckResult:
    """Render `template` into a directory of its own and load it into a fresh istiod."""
    from benchmarks.istiod_proc import IstiodError, IstiodProcess

    config = workdir / template.stem / "config"
    target = render_to(template, config, services, instances)
    rendered = target.read_text()
    documents = sum(1 for d in yaml.safe_load_all(rendered) if d)
    istiod = IstiodProcess(config, workdir / template.stem / "istiod", log_level="warning")
    try:
        istiod.start()
        problems = [str(p) for p in istiod.get_json("/debug/push_status").get("problems", [])]
        registry = {s["hostname"] for s in istiod.get_json("/debug/registryz")}
    except (IstiodError, OSError) as e:
        return CheckResult(template.name, documents, 0, [], [], f"{type(e).__name__}: {e}")
    finally:
        istiod.stop()
    missing = sorted(expected_hosts(rendered) - registry)
    return CheckResult(template.name, documents, len(registry), problems, missing)


def check_all(
    chosen: Sequence[Path], services: int, instances: int | None = None, parallel: int = 4
) -> list[CheckResult]:
    with (
        tempfile.TemporaryDirectory(prefix="render-check-") as tmp,
        ThreadPoolExecutor(parallel) as pool,
    ):
        futures = [pool.submit(check_template, t, Path(tmp), services, instances) for t in chosen]
        return [f.result() for f in futures]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("templates", nargs="*", help="template paths or names (default: all)")
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--instances", type=int, default=None, help="default: --services")
    parser.add_argument("--out", type=Path, help="write the rendered files here")
    parser.add_argument("--check", action="store_true", help="load each into istiod and check")
    args = parser.parse_args(argv)
    chosen = [resolve_template(t) for t in args.templates] or templates()
    if args.check:
        results = check_all(chosen, args.services, args.instances)
        for r in results:
            status = "ok " if r.ok else "BAD"
            print(
                f"{status} {r.template:<34} docs {r.documents:>5}  registry {r.services:>5}"
                f"  problems {len(r.problems)}  missing hosts {len(r.missing_hosts)}"
                f"{'  ' + r.error if r.error else ''}"
            )
            for problem in r.problems[:5]:
                print(f"      problem: {problem}")
            if r.missing_hosts:
                print(f"      missing: {r.missing_hosts[:5]}")
        return 0 if all(r.ok for r in results) else 1
    if args.out is None:
        parser.error("--out is required (or use --check)")
    for template in chosen:
        target = render_to(template, args.out, args.services, args.instances)
        print(f"{template.name} → {target} ({target.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
