"""Analysis of recorded audio (8 kHz 16-bit little-endian PCM, as ``Call.recorded_audio()`` returns it).

Once per recording, never per packet: the strongest tone is found with Goertzel filters in two passes, a
20 Hz grid over 300..3400 Hz on 250 ms, then 1 Hz steps around the best bin on up to one second from the
middle of the recording.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

__all__ = ["Tone", "dominant_tone", "pcm_samples", "level_dbov"]

RATE = 8000
FULL_SCALE = 32768.0


@dataclass(frozen=True)
class Tone:
    """The strongest sine component of a recording: its frequency, and the share of the power it holds."""

    hz: float
    ratio: float      # power at hz / total power, 0..1 (a clean tone is above 0.5)
    level_dbov: float  # RMS level of the whole window, dBov


def pcm_samples(pcm: bytes) -> list[int]:
    """The 16-bit little-endian samples of pcm (an odd trailing byte is ignored)."""
    n = len(pcm) // 2
    return list(struct.unpack(f"<{n}h", pcm[: 2 * n]))


def level_dbov(samples: list[int]) -> float:
    """RMS level in dBov (-200 for silence or no samples)."""
    if not samples:
        return -200.0
    ms = sum(s * s for s in samples) / len(samples)
    return max(-200.0, 10.0 * math.log10(ms / FULL_SCALE ** 2)) if ms > 0 else -200.0


def _goertzel_power(samples: list[int], hz: float) -> float:
    """|X(hz)|^2 * 2 / N^2: the mean square of the component at hz (for a sine of amplitude A: A^2 / 2)."""
    n = len(samples)
    w = 2.0 * math.pi * hz / RATE
    coeff = 2.0 * math.cos(w)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + coeff * s1 - s2
        s2, s1 = s1, s0
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return 2.0 * power / (n * n)


def dominant_tone(pcm: bytes, low: float = 300.0, high: float = 3400.0) -> Tone:
    """The strongest tone between low and high Hz in pcm (8 kHz 16-bit PCM); hz 0.0 when there is no audio."""
    samples = pcm_samples(pcm)
    if len(samples) < RATE // 20:  # under 50 ms: nothing to tell
        return Tone(0.0, 0.0, level_dbov(samples))
    mid = len(samples) // 2
    fine = samples[max(0, mid - RATE // 2): mid + RATE // 2]
    total = sum(x * x for x in fine) / len(fine)
    if total <= 0.0:
        return Tone(0.0, 0.0, -200.0)
    coarse = fine[: RATE // 4]
    best = max((_goertzel_power(coarse, f), f) for f in _frange(low, high, 20.0))[1]
    power, hz = max((_goertzel_power(fine, f), f) for f in _frange(max(low, best - 20.0), min(high, best + 20.0), 1.0))
    return Tone(hz, min(1.0, power / total), level_dbov(fine))


def _frange(start: float, stop: float, step: float) -> list[float]:
    n = int((stop - start) / step) + 1
    return [start + i * step for i in range(max(0, n))]
