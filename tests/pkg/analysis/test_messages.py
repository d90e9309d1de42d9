"""Istio's message forms: Go-style templates, the log line and the JSON object."""

from __future__ import annotations

import json

import pytest

from pkg.analysis import messages as m
from pkg.analysis.messages import Level, Message, go_format
from pkg.analysis.output import Format, render
from pkg.analysis.resource import Origin, ResourceRef

REF = ResourceRef("VirtualService", "default", "reviews", Origin("vs.yaml", 3))


def test_go_verbs() -> None:
    assert go_format("%s %q %v %d %%", ("a", 'b"c', ["x", "y"], 7)) == 'a "b\\"c" [x y] 7 %'
    assert go_format("%v", ([9080, 9090],)) == "[9080 9090]"
    assert go_format("%s and %s", ("one",)) == "one and %!s(MISSING)"


def test_log_line_uses_the_field_line_when_known() -> None:
    msg = Message(m.REFERENCED_RESOURCE_NOT_FOUND, ("host", "reviews"), REF, line=12)
    assert str(msg) == (
        "Error [IST0101] (VirtualService default/reviews vs.yaml:12) Referenced host not found: "
        '"reviews"'
    )
    unplaced = Message(m.REFERENCED_RESOURCE_NOT_FOUND, ("host", "reviews"), REF)
    assert "(VirtualService default/reviews vs.yaml:3)" in str(unplaced)
    cluster_scoped = ResourceRef("Namespace", "", "shop")
    assert Message(m.INTERNAL_ERROR, ("x",), cluster_scoped).origin() == " (Namespace shop)"


def test_json_form_has_istios_fields_in_go_order() -> None:
    msg = Message(m.NO_MATCHING_WORKLOADS_FOUND, ("app=a&b",), REF, line=5)
    text = render([msg], Format.JSON)
    assert "\\u0026" in text  # Go's encoder escapes &, < and >
    assert json.loads(text) == [
        {
            "code": "IST0127",
            "documentationUrl": "https://istio.io/v1.28/docs/reference/config/analysis/ist0127/"
            "?ref=istioctl-analyze",
            "level": "Warning",
            "message": "No matching workloads for this resource with the following labels: app=a&b",
            "origin": "VirtualService default/reviews",
            "reference": "vs.yaml:5",
        }
    ]
    assert list(json.loads(text)[0]) == sorted(json.loads(text)[0])
    assert render([], Format.JSON) == "[]"
    assert render([], Format.YAML) == "[]\n"


def test_colour_wraps_the_level_only() -> None:
    msg = Message(m.SCHEMA_WARNING, ("x",), REF)
    assert render([msg], Format.LOG, colorize=True).startswith("\033[33mWarning\033[0m [IST0133]")


def test_levels() -> None:
    assert Level.parse("warning") is Level.WARNING
    assert Level.ERROR.at_least(Level.WARNING) and not Level.INFO.at_least(Level.WARNING)
    with pytest.raises(ValueError, match="invalid level"):
        Level.parse("fatal")
