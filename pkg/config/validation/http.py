"""HTTP-level checks: header names and values, RE2 regexes, status codes, retry policies."""

from __future__ import annotations

import functools
import re

import re2

_TCHARS = re.compile(r"[!#$%&'*+\-.^_`|~A-Za-z0-9]+")
_STRICT_HEADER = re.compile(r"[-_A-Za-z0-9]+")
_PROBE_HEADER = re.compile(r"[-A-Za-z0-9]+")
_HEADER_VALUE_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_PSEUDO_HEADERS = frozenset((":method", ":scheme", ":authority", ":path", ":status"))
_JWT_CLAIM_PREFIX = "@request.auth.claims"

CORS_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*")
)
GRPC_STATUSES = frozenset(
    (
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    )
)
RETRY_ON_POLICIES = frozenset(
    (
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "envoy-ratelimited",
        "http3-post-connect-failure",
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    )
)
# The status codes Go's net/http has a text for (a retryOn entry may be one of them).
_KNOWN_STATUS = frozenset(
    (
        *(100, 101, 102, 103, *range(200, 209), 226, *range(300, 309), *range(400, 419)),
        *(421, 422, 423, 424, 425, 426, 428, 429, 431, 451, *range(500, 509), 510, 511),
    )
)


def is_jwt_claim_route(name: str) -> bool:
    """`@request.auth.claims.x` or `@request.auth.claims[x]`: routing on a JWT claim."""
    if not name.lower().startswith(_JWT_CLAIM_PREFIX):
        return False
    rest = name[len(_JWT_CLAIM_PREFIX) :]
    if rest.startswith(".") and len(rest) > 1:
        return True
    return rest.startswith("[") and rest.endswith("]") and len(rest) > 2


def check_header_name_or_jwt_claim(name: str) -> str | None:
    if not name:
        return "header name cannot be empty"
    if is_jwt_claim_route(name) or name in _PSEUDO_HEADERS:
        return None
    if _TCHARS.fullmatch(name) is None:
        return f"header name {name} is not a valid header name"
    return None


def check_cors_header_name(name: str) -> str | None:
    if not name:
        return "header name cannot be empty"
    if name == "*" or _TCHARS.fullmatch(name) is not None:
        return None
    return f"header name {name} is not a valid header name"


def check_strict_header_name(name: str) -> str | None:
    if not name:
        return "header name cannot be empty"
    if _STRICT_HEADER.fullmatch(name) is None:
        return f"header name {name} is not a valid header name"
    return None


def check_probe_header_name(name: str) -> str | None:
    if not name:
        return "header name cannot be empty"
    if _PROBE_HEADER.fullmatch(name) is None:
        return f"header name {name} is not a valid header name"
    return None


def is_internal_header(name: str) -> bool:
    return name.startswith(":") or name.lower() == "host"


def is_authority_header(name: str) -> bool:
    return name.lower() in (":authority", "host")


def check_header_add_or_set_name(name: str) -> str | None:
    """A request header to add or set (the authority may be set: checked elsewhere)."""
    if not name:
        return "header name cannot be empty"
    if is_internal_header(name) and not is_authority_header(name):
        return f'invalid header "{name}": header cannot have ":" prefix'
    return None


def check_header_operation_name(name: str) -> str | None:
    """A request header to remove, or a response header to add, set or remove."""
    if not name:
        return "header name cannot be empty"
    if name.lower() == "host":
        return f'invalid header "{name}": cannot set Host header'
    if is_internal_header(name):
        return f'invalid header "{name}": header cannot have ":" prefix'
    return None


def check_header_value(value: str) -> str | None:
    """A header value for Envoy: no control characters, and well-formed `%VAR(...)%` tokens."""
    if _HEADER_VALUE_CTL.search(value):
        return f"header value configuration {value} is invalid"
    problem = _check_format_variables(value)
    return f"header value configuration: {problem}" if problem else None


def _check_format_variables(value: str) -> str | None:
    """Envoy's header formatter grammar (router/header_parser.cc), as a small state machine."""
    state = "literal"
    pos = 0
    while pos < len(value):
        ch = value[pos]
        has_next = pos + 1 < len(value)
        if state == "literal":
            if ch == "%":
                if not has_next:
                    return "invalid header configuration. Un-escaped %"
                if value[pos + 1] == "%":
                    pos += 1
                else:
                    state = "name"
        elif state == "name":
            if ch == "%":
                state = "literal"
            elif ch == "(":
                state = "expect_array"
        elif state == "expect_array":
            if ch == "[":
                state = "expect_string"
            elif ch != " ":
                state = "string"
        elif state == "array_delim":
            if ch == ",":
                state = "expect_string"
            elif ch == "]":
                state = "args_end"
            elif ch != " ":
                return "invalid header configuration. Expecting ',', ']', or whitespace"
        elif state == "expect_string":
            if ch == '"':
                state = "string"
            elif ch != " ":
                return "invalid header configuration. Expecting '\"'"
        elif state == "string":
            if ch == "\\":
                if not has_next:
                    return "invalid header configuration. Un-terminated backslash in JSON string"
                pos += 1
            elif ch == ")":
                state = "var_end"
            elif ch == '"':
                state = "array_delim"
        elif state == "args_end":
            if ch == ")":
                state = "var_end"
            elif ch != " ":
                return "invalid header configuration. Expecting ')' or whitespace"
        elif state == "var_end":
            if ch == "%":
                state = "literal"
            elif ch != " ":
                return "invalid header configuration. Expecting '%' or whitespace after"
        pos += 1
    if state != "literal":
        return f"invalid header configuration. Un-terminated variable expression '{value}'"
    return None


@functools.cache
def _re2_options() -> object:
    options = re2.Options()
    options.log_errors = False  # compile errors are reported to the user, not logged by RE2
    return options


@functools.lru_cache(maxsize=4096)
def check_regex(pattern: str) -> str | None:
    """An RE2 regex as Envoy compiles it; Istio caps its length at 1024."""
    if len(pattern) > 1024:
        return "regex is too large, max length allowed is 1024"
    try:
        re2.compile(pattern, _re2_options())
    except re2.error as err:
        detail = err.args[0].decode() if err.args and isinstance(err.args[0], bytes) else err
        return f"{detail}; Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)"
    return None


# Envoy refuses a regex whose compiled RE2 program is larger than the runtime key
# `re2.max_program_size.error_level`; Istio's bootstrap (and `istioctl bootstrap`) set it to
# 32768. Istio's validation does not check it: the route configuration is NACKed.
ENVOY_RE2_MAX_PROGRAM_SIZE = 32768


@functools.lru_cache(maxsize=4096)
def check_regex_program_size(pattern: str) -> str | None:
    """A warning when Envoy (with Istio's bootstrap) would reject this valid regex as too big."""
    try:
        size = int(re2.compile(pattern, _re2_options()).programsize)
    except re2.error:
        return None  # check_regex reports it
    if size <= ENVOY_RE2_MAX_PROGRAM_SIZE:
        return None
    return (
        f"regex RE2 program size of {size} > max program size of {ENVOY_RE2_MAX_PROGRAM_SIZE} "
        "(re2.max_program_size.error_level): Envoy will reject the route configuration"
    )


def check_http_status(status: int) -> str | None:
    if status < 200 or status > 600:
        return f"HTTP status {status} is not in range 200-599"
    return None


def check_retry_on(retry_on: str) -> list[str]:
    problems = []
    for policy in retry_on.split(","):
        code = int(policy) if policy.isdigit() else 0
        if code not in _KNOWN_STATUS and policy not in RETRY_ON_POLICIES:
            problems.append(f'"{policy}" is not a valid retryOn policy')
    return problems
