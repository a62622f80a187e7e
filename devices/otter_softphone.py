"""OtterSoft: a softphone that offers video and audio, and accepts audio only."""
from __future__ import annotations

from pysiptest import sdp
from pysiptest.device import Device

VIDEO_PT = 96


def _media_lines(offer: bytes) -> list[tuple[str, str]]:
    """(media, formats) of each m= line of an SDP body, in order."""
    out = []
    for line in offer.decode("utf-8", "replace").splitlines():
        if line.startswith("m="):
            parts = line[2:].split()
            if len(parts) >= 4:
                out.append((parts[0], " ".join(parts[3:])))
    return out


class OtterSoft(Device):
    """A softphone: offers audio (PCMU, PCMA) and H.264 video; answers audio and refuses video with port 0."""

    model = "OtterSoft"
    vendor = "Otter"
    user_agent = "OtterSoft/4.2 (Linux)"
    codecs = [0, 8]
    supported = ["replaces", "norefersub"]
    ring_delay = 0.0
    register_expires = 300
    tone_hz = 600.0

    def offer_sdp(self, host: str, port: int, username: str) -> bytes:
        """Audio as usual, then an H.264 video stream on the next even port (it never sends video)."""
        audio = sdp.build(host, port, list(self.codecs), ptime=self.ptime, username=username)
        video = (f"m=video {port + 2} RTP/AVP {VIDEO_PT}\r\na=rtpmap:{VIDEO_PT} H264/90000\r\n"
                 f"a=fmtp:{VIDEO_PT} profile-level-id=42e01f\r\na=sendrecv\r\n")
        return audio + video.encode()

    def answer_sdp(self, host: str, port: int, payload_type: int, offer: bytes, username: str) -> bytes:
        """Audio with the chosen codec; every other offered stream refused with port 0 (RFC 3264 section 6)."""
        audio = sdp.build(host, port, [payload_type], ptime=self.ptime, username=username).decode()
        head, _, audio_media = audio.partition("m=audio")
        audio_media = "m=audio" + audio_media
        media = []
        audio_done = False
        for kind, fmts in _media_lines(offer) or [("audio", str(payload_type))]:
            if kind == "audio" and not audio_done:
                media.append(audio_media)
                audio_done = True
            else:
                media.append(f"m={kind} 0 RTP/AVP {fmts}\r\n")
        if not audio_done:
            media.insert(0, audio_media)
        return (head + "".join(media)).encode()
