"""WAV files as a media source: 8 kHz 16-bit mono PCM encoded to G.711 mu-law and written as a capture of
RTP packets (20 ms each) that the media engine replays with its pcap source (timing, SSRC, sequence numbers,
timestamps and addresses rewritten there)."""
from __future__ import annotations

import struct
import wave
from pathlib import Path
from typing import Union

_BIAS, _CLIP = 0x84, 32635


def _ulaw(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0
    mag = min(-sample if sample < 0 else sample, _CLIP) + _BIAS
    exp = 7
    mask = 0x4000
    while exp > 0 and not mag & mask:
        exp -= 1
        mask >>= 1
    return ~(sign | (exp << 4) | ((mag >> (exp + 3)) & 0x0F)) & 0xFF


_ULAW = bytes(_ulaw(s) for s in range(-32768, 32768))


def read_pcm(path: Union[str, Path]) -> bytes:
    """The samples of an 8 kHz 16-bit mono PCM WAV file (little-endian); ValueError naming what differs."""
    try:
        with wave.open(str(path), "rb") as w:
            fmt = (w.getframerate(), w.getsampwidth(), w.getnchannels())
            if fmt != (8000, 2, 1):
                raise ValueError(f"{path}: needs 8000 Hz 16-bit mono PCM, got {fmt[0]} Hz {8 * fmt[1]}-bit "
                                 f"{fmt[2]} channel(s)")
            return w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"{path}: not a PCM WAV file ({exc})") from None


def encode_ulaw(pcm: bytes) -> bytes:
    """G.711 mu-law of 16-bit little-endian samples."""
    n = len(pcm) // 2
    return bytes(_ULAW[s + 32768] for s in struct.unpack(f"<{n}h", pcm[: 2 * n]))


def wav_to_pcap(wav_path: Union[str, Path], pcap_path: Union[str, Path], ptime_ms: int = 20) -> int:
    """Write the WAV file as PCMU RTP packets (payload type 0, one per ptime) in a raw-IP capture; the count."""
    audio = encode_ulaw(read_pcm(wav_path))
    step = 8 * ptime_ms
    if len(audio) < step:
        raise ValueError(f"{wav_path}: shorter than one {ptime_ms} ms packet")
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)]  # LINKTYPE_RAW
    count = 0
    for i in range(0, len(audio) - step + 1, step):
        rtp = struct.pack("!BBHII", 0x80, 0, count & 0xFFFF, i, 0x5157A7E5) + audio[i:i + step]
        udp = struct.pack("!HHHH", 40000, 40002, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
        us = count * ptime_ms * 1000
        out.append(struct.pack("<IIII", us // 1_000_000, us % 1_000_000, len(ip), len(ip)) + ip)
        count += 1
    Path(pcap_path).write_bytes(b"".join(out))
    return count


def write_pcm(path: Union[str, Path], pcm: bytes) -> Path:
    """Write 8 kHz 16-bit little-endian mono PCM (e.g. ``Call.recorded_audio()``) as a WAV file; its path."""
    p = Path(path)
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm[: len(pcm) // 2 * 2])
    return p
