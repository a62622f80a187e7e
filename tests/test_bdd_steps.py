"""The step library: every phrase in features/ is defined exactly once, and docs/steps.md is current."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_finds_no_undefined_or_ambiguous_steps() -> None:
    behave = Path(sys.executable).with_name("behave")
    proc = subprocess.run([str(behave), "--dry-run", "--no-summary", "--format", "plain", "features/"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "undefined" not in out.lower() and "ambiguous" not in out.lower(), out[-4000:]


def test_steps_md_is_generated_from_the_library() -> None:
    from pysiptest.bdd.docs import render

    current = (ROOT / "docs" / "steps.md").read_text()
    assert current == render(), "docs/steps.md is stale: run python -m pysiptest.bdd.docs > docs/steps.md"


def test_every_step_documents_an_example() -> None:
    from pysiptest.bdd.docs import _steps

    missing = [pattern for _, pattern, func in _steps() if "Example:" not in (func.__doc__ or "")]
    assert not missing, f"steps without an example in their docstring: {missing}"


# -- the phrases of the vocabulary, the parameter types, unknown names, SUT tags -------------------------------
import pytest  # noqa: E402

PHRASES = {
    "When Bob transfers the call to Carol": "steps_transfer.step_blind_transfer",
    "When Bob transfers Alice to Carol": "steps_transfer.step_blind_transfer_peer",
    "When Bob transfers Alice to Carol after consulting": "steps_transfer.step_attended_transfer",
    "When Alice presses 1234": "steps_media.step_presses",
    "When Alice presses 12*# by INFO": "steps_media.step_presses_by",
    "Then Bob receives DTMF 1234": "steps_media.step_receives_dtmf",
    "Then Bob receives DTMF 1234 by RFC 4733": "steps_media.step_receives_dtmf_by",
    "Then Alice and Bob hear each other": "steps_media.step_hear_each_other",
    "Then Alice and Bob use PCMA": "steps_media.step_use_codec",
    "When Alice watches Bob's presence": "steps_presence.step_watch",
    "Then Alice sees Bob as busy": "steps_presence.step_sees",
    "When Bob answers with a reliable 180": "steps_signalling.step_reliable_180",
    "Then Alice receives a PRACK-able 180 with RSeq": "steps_signalling.step_prackable",
    "Then Bob receives PRACK": "steps_assert.step_receives",
    "Given the call uses a session timer of 90 seconds": "steps_signalling.step_session_timer",
    "When Alice refreshes the session": "steps_signalling.step_refresh",
    "Then the session is refreshed by Bob within 50 seconds": "steps_signalling.step_refreshed_within",
    "When Alice pings the server": "steps_signalling.step_ping_server",
    "When Alice sends OPTIONS to Bob": "steps_signalling.step_options_to",
    'When Alice sends INFO with "x=1"': "steps_signalling.step_send_info",
    "When Alice updates the session": "steps_signalling.step_update",
    "When Alice switches the call to G722": "steps_signalling.step_switch_codec",
    "Given Alice's phone offers PCMU, PCMA and G722": "steps_signalling.step_offers_codecs",
    "Then Alice is challenged for REGISTER and authenticates": "steps_signalling.step_challenged",
    "Given the server listens on IPv6": "steps_network.step_server_ipv6",
}


def _match(text: str):  # type: ignore[no-untyped-def]
    import pysiptest.bdd.steps  # noqa: F401
    from behave.step_registry import registry

    keyword, _, phrase = text.partition(" ")
    return registry.find_match(type("S", (), {"step_type": keyword.lower(), "name": phrase})())


@pytest.mark.parametrize("text,target", sorted(PHRASES.items()))
def test_phrase_reaches_its_step(text: str, target: str) -> None:
    m = _match(text)
    assert m is not None, f"no step for {text!r}"
    assert f"{m.func.__module__}.{m.func.__name__}".endswith(target), f"{text!r} went to {m.func.__qualname__}"


def test_parameter_types_parse_codecs_and_digits() -> None:
    m = _match("Given Alice's phone offers PCMU, PCMA and G722")
    assert [a.value for a in m.arguments] == ["Alice", [0, 8, 9]]
    m = _match("When Alice presses 0*#D by INFO")
    assert [a.value for a in m.arguments] == ["Alice", "0*#D", "INFO"]
    assert _match("When Alice presses 12x") is None  # x is not a DTMF key


def test_unknown_codec_lists_the_known_ones() -> None:
    from pysiptest.bdd._common import codec_pt

    assert (codec_pt("pcma"), codec_pt("101")) == (8, 101)
    with pytest.raises(AssertionError, match="unknown codec 'OPUSX'; known: PCMU, .*PCMA"):
        codec_pt("OPUSX")


class _Ctx:
    """A scenario context with one phone (a placeholder: the steps fail on the name before using it)."""

    def __init__(self) -> None:
        self.phones = {"Alice": type("P", (), {"user": "alice", "active_calls": [], "calls": []})()}
        self.calls: list = []


@pytest.mark.parametrize("module,func,args", [
    ("steps_media", "step_presses", ("Zed", "1")),
    ("steps_media", "step_receives_dtmf", ("Zed", "1")),
    ("steps_media", "step_hear_each_other", ("Alice", "Zed")),
    ("steps_transfer", "step_blind_transfer", ("Alice", "Zed")),
    ("steps_transfer", "step_attended_transfer", ("Alice", "Alice", "Zed")),
    ("steps_transfer", "step_blind_transfer_peer", ("Alice", "Zed", "Alice")),
    ("steps_presence", "step_watch", ("Alice", "Zed")),
    ("steps_signalling", "step_ping_server", ("Zed",)),
    ("steps_signalling", "step_reliable_180", ("Zed",)),
    ("steps_signalling", "step_refresh", ("Zed",)),
    ("steps_signalling", "step_challenged", ("Zed", "INVITE")),
])
def test_unknown_person_fails_listing_the_known_ones(module: str, func: str, args: tuple) -> None:
    import importlib

    fn = getattr(importlib.import_module(f"pysiptest.bdd.{module}"), func)
    with pytest.raises(AssertionError, match=r"no phone for 'Zed'; phones in this scenario: Alice"):
        fn(_Ctx(), *args)


def test_sut_tags_skip_with_the_description_as_reason() -> None:
    from pysiptest.bdd.environment import _sut_skip_reason

    feature = type("F", (), {"description": ["Feature text."]})()

    def scenario(tags: list[str], description: list[str]):  # type: ignore[no-untyped-def]
        return type("S", (), {"effective_tags": tags, "description": description, "feature": feature})()

    s = scenario(["tls", "not-refpbx"], ["Not against the reference PBX:", "it listens on UDP only."])
    assert _sut_skip_reason(s, "refpbx") == \
        "@not-refpbx (refpbx): Not against the reference PBX: it listens on UDP only."
    assert _sut_skip_reason(s, "kamailio") == ""
    only = scenario(["kamailio-only"], [])
    assert _sut_skip_reason(only, "refpbx") == "@kamailio-only (refpbx): Feature text."
    assert _sut_skip_reason(only, "kamailio") == ""
