"""The voicemail box keeps the audio it received: per message the decoded samples (a WAV file on save) and
the strongest tone in them, so a test can check that the caller's tone was recorded."""
from __future__ import annotations

import math
import struct
import time
import wave
from pathlib import Path

import pytest

from pysiptest import Answered, Engine, Phone, find_device
from pysiptest.audio import dominant_tone, pcm_samples
from pysiptest.sut import ReferencePbxSut
from pysiptest.voicemail import VoicemailService


def _leave_message(engine: Engine, pbx: ReferencePbxSut, box: VoicemailService, model: str, user: str,
                   seconds: float):
    caller = Phone(user, find_device(model)(), engine=engine, proxy=(pbx.host, pbx.port))
    caller.register(timeout=5)
    call = caller.call("bob")
    caller.expect(Answered, 5, call=call)
    time.sleep(seconds)
    call.hangup()
    return caller


@pytest.fixture
def voicemail_pbx(engine: Engine):
    with ReferencePbxSut() as pbx:
        box_phone = Phone("voicemail", find_device("Voicemail")(), engine=engine, proxy=(pbx.host, pbx.port))
        box_phone.register(timeout=5)
        box = VoicemailService(box_phone).start()
        assert pbx.pbx is not None
        pbx.pbx.set_dnd("bob", True)  # every call for bob goes to the box
        try:
            yield pbx, box
        finally:
            box.stop()


@pytest.mark.parametrize("model, hz", [("Squirrel350", 440.0), ("Chipmunk5000", 1000.0)])
def test_the_box_records_the_callers_tone(engine: Engine, voicemail_pbx, model: str, hz: float,
                                          tmp_path: Path) -> None:
    pbx, box = voicemail_pbx
    _leave_message(engine, pbx, box, model, "alice", 2.5)
    (msg,) = box.wait_for_message("bob", 1, timeout=5)
    assert msg.reason == "do-not-disturb" and msg.caller == "alice"
    # 2.5 s of audio: longer than the engine's 1.024 s ring, so it was read out while the call was up
    assert 2.2 <= msg.audio_seconds <= 2.9, msg.audio_seconds
    assert abs(msg.tone_hz - hz) <= 2.0 and msg.tone_ratio > 0.8, (msg.tone_hz, msg.tone_ratio)
    assert msg.heard_tone(hz) and not msg.heard_tone(425.0)
    # the tone is there from the start to the end of the recording: no hole where a read was missed
    samples = pcm_samples(msg.audio)
    step = 4000  # 0.5 s pieces
    pieces = [samples[i:i + step] for i in range(0, len(samples) - step + 1, step)]
    assert len(pieces) >= 4
    for i, piece in enumerate(pieces[1:-1], 1):  # the first and last may hold the start and end of the stream
        t = dominant_tone(struct.pack(f"<{len(piece)}h", *piece))
        assert abs(t.hz - hz) <= 3.0 and t.ratio > 0.8, (i, t)
    files = box.save(tmp_path)
    wav_path = tmp_path / "bob-1.wav"
    assert wav_path in files and (tmp_path / "bob.json") in files
    with wave.open(str(wav_path), "rb") as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (8000, 2, 1)
        assert w.getnframes() == len(samples)
        assert w.readframes(w.getnframes()) == msg.audio


def test_two_messages_keep_their_own_audio(engine: Engine, voicemail_pbx) -> None:
    pbx, box = voicemail_pbx
    _leave_message(engine, pbx, box, "Squirrel350", "alice", 1.0)
    box.wait_for_message("bob", 1, timeout=5)
    _leave_message(engine, pbx, box, "HeronBase", "carol", 1.5)
    first, second = box.wait_for_message("bob", 2, timeout=5)
    assert (first.caller, second.caller) == ("alice", "carol")
    assert abs(first.tone_hz - 440.0) <= 2.0 and abs(second.tone_hz - 800.0) <= 2.0
    assert 0.8 <= first.audio_seconds <= 1.4 and 1.3 <= second.audio_seconds <= 1.9


def test_a_phone_without_record_audio_keeps_nothing(engine: Engine) -> None:
    alice = Phone("alice", find_device("Squirrel350")(), engine=engine)
    bob = Phone("bob", find_device("Chipmunk5000")(), engine=engine, transport="udp")
    alice.proxy = (bob.host, bob.port)
    call = alice.call("bob")
    incoming = bob.wait_for_call(5)
    incoming.answer()
    alice.expect(Answered, 5, call=call)
    time.sleep(0.5)
    assert incoming.recorded_audio() == b"" and call.recorded_audio() == b""
    assert incoming.heard_tone(440.0)  # audio did arrive: it is just not kept
    call.hangup()


def test_dominant_tone_of_synthetic_audio() -> None:
    pcm = struct.pack("<8000h", *[int(6000 * math.sin(2 * math.pi * 1234.0 * i / 8000)) for i in range(8000)])
    t = dominant_tone(pcm)
    assert abs(t.hz - 1234.0) <= 1.0 and t.ratio > 0.99
    assert dominant_tone(bytes(8000)).hz == 0.0
    assert dominant_tone(b"").hz == 0.0
