"""Media.start_many: many streams started in one hand-over to the media thread."""
from __future__ import annotations

import time

import pytest

from pysiptest import _core

LOOP = "127.0.0.1"


def test_start_many_starts_every_stream_with_the_shared_options() -> None:
    with _core.Media() as media:
        rx = [media.open(LOOP) for _ in range(50)]
        tx = [media.open(LOOP) for _ in range(50)]
        media.start_many([(i, LOOP, 0) for i, _ in rx], source="none")
        t0 = time.monotonic()
        media.start_many([(t, LOOP, p) for (t, _), (_, p) in zip(tx, rx)], payload_type=8, source="tone",
                         tone_hz=700.0)
        assert time.monotonic() - t0 < 2.0
        time.sleep(0.5)
        for (r, _), (t, _) in zip(rx, tx):
            st = media.stats(r)
            assert st["rx_packets"] >= 15 and st["rx_payload_type"] == 8 and st["rx_lost"] == 0, st
            assert media.stats(t)["sending"]
        assert media.detect_tone(rx[7][0], 700.0)["present"]


def test_start_many_names_the_stream_that_failed_and_checks_items() -> None:
    with _core.Media() as media:
        a, _ = media.open(LOOP)
        with pytest.raises(KeyError) as ei:
            media.start_many([(a, LOOP, 40000), (987654, LOOP, 40000)], source="silence")
        assert ei.value.args[0] == 987654
        with pytest.raises(TypeError, match=r"items\[0\]"):
            media.start_many([a], source="silence")
        with pytest.raises(ValueError, match="remote port 0"):
            media.start_many([(a, LOOP, 0)], source="silence")
        media.start_many([])
