"""A connection failure's reason is cut at a word, never mid-word ('kind: InvalidDa')."""

from __future__ import annotations

from devenv.worker.temporal_connection import _reason


def test_a_long_transport_message_is_cut_at_a_word() -> None:
    text = (
        "Failed client connect: Server connection error: tonic::transport::Error(Transport, "
        "ConnectError(Custom { kind: SomethingElse, error: InvalidMessage(Whatever) }))"
    )
    reason = _reason(RuntimeError(text), 5)
    assert reason.endswith(" …") and len(reason) <= 122
    assert text.startswith(reason.removesuffix(" …"))
    assert text[len(reason.removesuffix(" …"))] in " ,:({[", "cut between words"
