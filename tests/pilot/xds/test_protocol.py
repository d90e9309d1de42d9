"""The sans-IO request classification, against the sequences real clients send
(../shared/reference/envoy-xds-field-notes.md)."""

from __future__ import annotations

import pytest

from pilot.xds.protocol import RequestKind, WatchState, classify_delta, classify_sotw
from pkg.xds import typeurls

CDS = typeurls.CLUSTER
EDS = typeurls.ENDPOINT


def sotw(
    state: WatchState | None,
    type_url: str,
    names: list[str],
    nonce: str = "",
    version: str = "",
    error: str = "",
) -> tuple[WatchState, object]:
    return classify_sotw(
        state,
        type_url=type_url,
        names=names,
        nonce=nonce,
        version=version,
        error_message=error,
        error_code=13 if error else 0,
        now=1.0,
    )


def sent(state: WatchState, nonce: str, version: str) -> None:
    state.nonce_sent = nonce
    state.version_sent = version


def test_first_cds_request_is_initial_and_wildcard() -> None:
    state, d = sotw(None, CDS, [])
    assert d.kind is RequestKind.INITIAL and d.respond
    assert state.wildcard


def test_first_eds_request_is_explicit() -> None:
    state, d = sotw(None, EDS, ["c1", "c2"])
    assert d.kind is RequestKind.INITIAL and d.respond
    assert not state.wildcard and state.names == {"c1", "c2"}
    assert d.added == {"c1", "c2"}


def test_ack_without_name_change_is_not_answered() -> None:
    state, _ = sotw(None, EDS, ["c1"])
    sent(state, "n1", "v1")
    state, d = sotw(state, EDS, ["c1"], nonce="n1", version="v1")
    assert d.kind is RequestKind.ACK and not d.respond
    assert state.nonce_acked == "n1" and state.version_acked == "v1"
    assert state.synced


def test_stale_nonce_is_ignored_even_with_new_names() -> None:
    state, _ = sotw(None, EDS, ["c1", "c2"])
    sent(state, "n2", "v2")
    state, d = sotw(state, EDS, ["c3", "c1", "c2"], nonce="n1", version="v1")
    assert d.kind is RequestKind.STALE and not d.respond
    # The names are not taken from a stale request ...
    assert state.names == {"c1", "c2"}
    # ... but the next ACK carrying them is a resubscription and gets an answer.
    state, d = sotw(state, EDS, ["c3", "c1", "c2"], nonce="n2", version="v2")
    assert d.kind is RequestKind.ACK and d.respond
    assert d.added == {"c3"}


def test_nack_is_recorded_and_never_answered() -> None:
    state, _ = sotw(None, CDS, [])
    sent(state, "n9", "v9")
    state, d = sotw(state, CDS, [], nonce="n9", version="v8", error="bad cluster")
    assert d.kind is RequestKind.NACK and not d.respond
    assert state.nack is not None and state.nack.message == "bad cluster"
    assert state.nack.version == "v8"  # Envoy reports the last accepted version
    assert not state.synced
    # A later ACK clears the error.
    sent(state, "n10", "v10")
    state, d = sotw(state, CDS, [], nonce="n10", version="v10")
    assert state.nack is None and d.kind is RequestKind.ACK


def test_a_nack_without_a_nonce_is_never_answered() -> None:
    """An unattributable NACK (error_detail, no nonce) is a NACK, not a new request: answering
    it would let a client that NACKs everything drive a push loop (Istio checks the error
    first)."""
    state, _ = sotw(None, CDS, [])
    sent(state, "n1", "v1")
    for _ in range(3):
        state, d = sotw(state, CDS, [], error="rejected")
        assert d.kind is RequestKind.NACK and not d.respond
    state, _ = delta(None, CDS)
    state.nonce_sent = "n1"
    for _ in range(3):
        state, d = delta(state, CDS, error="rejected")
        assert d.kind is RequestKind.NACK and not d.respond


def test_removed_names_are_forgotten_so_a_resubscription_is_answered() -> None:
    state, _ = sotw(None, EDS, ["c1", "c2"])
    sent(state, "n1", "v1")
    state.sent = {"c1": "a", "c2": "b"}
    state, d = sotw(state, EDS, ["c1"], nonce="n1", version="v1")
    assert d.removed == {"c2"} and "c2" not in state.sent
    sent(state, "n2", "v2")
    state, d = sotw(state, EDS, ["c1", "c2"], nonce="n2", version="v2")
    assert d.respond and d.added == {"c2"}


def test_empty_names_on_explicit_type_unsubscribes() -> None:
    state, _ = sotw(None, EDS, ["c1"])
    sent(state, "n1", "v1")
    state, d = sotw(state, EDS, [], nonce="n1", version="v1")
    assert d.kind is RequestKind.UNSUBSCRIBE and not d.respond
    assert not state.names


def test_grpc_update_with_latest_nonce_and_old_version_answers_new_names() -> None:
    # grpcio grows CDS names one by one with the latest nonce and the old version.
    state, _ = sotw(None, CDS, ["g1"])
    assert not state.wildcard
    sent(state, "n1", "v1")
    state, d = sotw(state, CDS, ["g1", "g2"], nonce="n1", version="")
    assert d.respond and d.added == {"g2"}
    assert state.version_acked == ""  # the version did not match what was sent


def test_request_without_nonce_after_initial_is_answered() -> None:
    state, _ = sotw(None, EDS, ["c1"])
    sent(state, "n1", "v1")
    state, d = sotw(state, EDS, ["c1"])
    assert d.kind is RequestKind.UPDATE and d.respond


def delta(
    state: WatchState | None,
    type_url: str,
    sub: list[str] = (),  # type: ignore[assignment]
    unsub: list[str] = (),  # type: ignore[assignment]
    initial: dict[str, str] | None = None,
    nonce: str = "",
    error: str = "",
) -> tuple[WatchState, object]:
    return classify_delta(
        state,
        type_url=type_url,
        subscribe=sub,
        unsubscribe=unsub,
        initial_versions=initial or {},
        nonce=nonce,
        error_message=error,
        now=1.0,
    )


def test_delta_initial_wildcard_keeps_client_versions() -> None:
    state, d = delta(None, CDS, initial={"c1": "x"})
    assert d.kind is RequestKind.INITIAL and d.respond and state.wildcard
    assert state.sent == {"c1": "x"}


def test_delta_ack_and_nack() -> None:
    state, _ = delta(None, EDS, sub=["c1"])
    state.nonce_sent = "n1"
    state.outstanding["n1"] = ("c1",)
    state, d = delta(state, EDS, nonce="n1")
    assert d.kind is RequestKind.ACK and not d.respond and state.synced
    state.nonce_sent = "n2"
    state.outstanding["n2"] = ("c1",)
    state, d = delta(state, EDS, nonce="n2", error="bad")
    assert d.kind is RequestKind.NACK and not d.respond
    assert state.nack is not None and state.nack.names == ("c1",)


def test_delta_unsubscribe_forgets_sent_version() -> None:
    state, _ = delta(None, EDS, sub=["c1", "c2"])
    state.sent = {"c1": "a", "c2": "b"}
    state, d = delta(state, EDS, unsub=["c2"])
    assert "c2" not in state.names and "c2" not in state.sent
    state, d = delta(state, EDS, sub=["c2"])
    assert d.respond and d.added == {"c2"}


@pytest.mark.parametrize("type_url", [CDS, typeurls.LISTENER])
def test_delta_first_request_with_star_is_wildcard(type_url: str) -> None:
    state, _ = delta(None, type_url, sub=["*"])
    assert state.wildcard and not state.names


def test_names_key_recognises_a_repeated_list_and_never_hides_a_change() -> None:
    """The connection passes a comparable form of the request's names; an ACK repeating the
    list is matched by it, and a list with other names (same length) is still seen."""
    names = [f"c{i}" for i in range(20)]
    state, _ = classify_sotw(
        None, type_url=EDS, names=names, nonce="", version="", names_key=tuple(names), now=1.0
    )
    sent(state, "n1", "v1")
    state, d = classify_sotw(
        state, type_url=EDS, names=names, nonce="n1", version="v1", names_key=tuple(names)
    )
    assert d.kind is RequestKind.ACK and not d.respond
    swapped = [*names[:-1], "c99"]
    state, d = classify_sotw(
        state, type_url=EDS, names=swapped, nonce="n1", version="v1", names_key=tuple(swapped)
    )
    assert d.kind is RequestKind.ACK and d.respond
    assert d.added == {"c99"} and d.removed == {"c19"}
    assert state.names_key == tuple(swapped)
    # A NACK does not change the subscription, nor the key.
    sent(state, "n2", "v2")
    state, d = classify_sotw(
        state,
        type_url=EDS,
        names=names,
        nonce="n2",
        version="v1",
        error_message="bad",
        error_code=13,
        names_key=tuple(names),
    )
    assert d.kind is RequestKind.NACK
    assert state.names_key == tuple(swapped)
