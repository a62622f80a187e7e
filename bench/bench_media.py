"""N concurrent bidirectional G.711 streams between two media engines on loopback.

Each stream pair sends 50 packets a second each way (PCMU, 20 ms).  For rising N the program reports
how late packets left against their 20 ms schedule (p50/p99/max over every packet of both engines), the
loss seen by the receivers, and the CPU used by each engine's media thread (from /proc).

In the same run, for each N up to --sipp-max, SIPp's pcap play: N concurrent ``sipp -sn uac_pcap`` calls
(a thread per call) against ``pysiptest phone --media echo``, with the deviation of SIPp's send times from
the capture's schedule measured on the wire and SIPp's CPU (see sipp_pcap.py; needs root for the packet
socket); for those N the engine's packets are measured on the wire the same way too.  A side-by-side table
ends the output.  --realtime PRIO runs the media threads under SCHED_FIFO (Media.set_realtime).

    .venv/bin/python bench/bench_media.py [N ...] [--seconds S] [--sipp-max N | --no-sipp] [--realtime PRIO]

Benchmarks print figures; they are not tests.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

from pysiptest import _core

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sipp_pcap  # noqa: E402  (beside this file)

LOOP = "127.0.0.1"


def media_threads_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of every thread named pysip-media in this process, by thread id."""
    out: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                if f.read().strip() != "pysip-media":
                    continue
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            continue
    return out


def open_range(media: _core.Media, n: int) -> tuple[list[tuple[int, int]], int | None]:
    """n streams on consecutive even ports below the ephemeral range (base returned), so that a capture
    filter on the range sees their packets only; on ports the kernel picks (base None) when none is free."""
    base = sipp_pcap.free_port_range(n, stride=2, extra=(0,))
    streams: list[tuple[int, int]] = []
    if base is not None:
        try:
            for k in range(n):
                streams.append(media.open(LOOP, base + 2 * k))
            return streams, base
        except (OSError, _core.EngineError):
            media.close_many([s for s, _ in streams])
            streams = []
    return [media.open(LOOP) for _ in range(n)], None


def run(n: int, seconds: float, realtime: int = 0, wire: bool = False) -> dict[str, float]:
    """N stream pairs between two engines; wire: also the deviation of one engine's packets on the wire
    (kernel timestamps of a packet socket, as for SIPp), while the capture thread takes its own CPU."""
    with _core.Media() as a, _core.Media() as b:
        if realtime:
            a.set_realtime(realtime)
            b.set_realtime(realtime)
        if wire:
            sa, base = open_range(a, n)
        else:
            sa, base = [a.open(LOOP) for _ in range(n)], None
        sb = [b.open(LOOP) for _ in range(n)]
        # one hand-over per engine (start_many): starting stream by stream waits for the busy media thread
        # once per stream, which took minutes for thousands of streams on a loaded machine
        b.start_many([(ib, LOOP, pa) for (_, pa), (ib, _) in zip(sa, sb)], payload_type=0, source="silence")
        a.start_many([(ia, LOOP, pb) for (ia, _), (_, pb) in zip(sa, sb)], payload_type=0, source="silence")
        time.sleep(1.0)  # warm-up: every stream running
        a.lateness(reset=True)
        b.lateness(reset=True)
        cap = sipp_pcap.SourceCapture(base, base + 2 * (n - 1)) if base is not None else None
        cpu0 = media_threads_cpu()
        t0 = time.monotonic()
        time.sleep(seconds)
        cpu1 = media_threads_cpu()
        wall = time.monotonic() - t0
        if cap is not None:
            cap.stop()
        la, lb = a.lateness(), b.lateness()
        # read while running (stopping stream by stream would wait for the media thread once per stream):
        # rx_lost counts sequence gaps, so packets still in flight are not counted as lost
        st = [a.stats(s) for s, _ in sa] + [b.stats(s) for s, _ in sb]
    tx = sum(x["tx_packets"] for x in st)
    rx = sum(x["rx_packets"] for x in st)
    lost = sum(x["rx_lost"] for x in st)
    cpus = sorted((cpu1[t] - cpu0.get(t, 0.0)) / wall * 100 for t in cpu1)
    count = la["count"] + lb["count"]
    # the combined percentile is approximated by the worse engine's (both carry the same load)
    return {
        "n": n, "pps": count / wall, "p50_us": max(la["p50_us"], lb["p50_us"]),
        "p99_us": max(la["p99_us"], lb["p99_us"]), "max_us": max(la["max_us"], lb["max_us"]),
        "tx": tx, "rx": rx, "lost": lost, "cpu": cpus, **wire_figures(cap),
    }


def wire_figures(cap: sipp_pcap.SourceCapture | None) -> dict[str, float]:
    """Wire deviation from the 20 ms schedule of one engine's packets (us), empty without a capture."""
    if cap is None:
        return {}
    devs = sipp_pcap.deviations(cap.times, None, period_us=20000.0)
    return {"wire_p50_us": sipp_pcap.percentile(devs, 0.5), "wire_p99_us": sipp_pcap.percentile(devs, 0.99),
            "wire_max_us": devs[-1] if devs else float("nan"), "wire_packets": len(devs)}


def fmt_us(v: object) -> str:
    return f"{v:.0f}" if isinstance(v, (int, float)) and v == v else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", nargs="*", type=int, default=[100, 500, 1000, 2000, 3000])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--sipp-max", type=int, default=200,
                    help="run SIPp's pcap play for N up to this (a thread per call; default 200)")
    ap.add_argument("--no-sipp", action="store_true", help="skip the SIPp comparison")
    ap.add_argument("--realtime", type=int, default=0, metavar="PRIO",
                    help="run both media threads under SCHED_FIFO at this priority (Media.set_realtime; needs "
                         "root): other busy processes then do not delay them")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs); "
          + (f"media threads SCHED_FIFO priority {args.realtime}" if args.realtime else "normal scheduling"))
    print(f"{'streams':>8} {'pkt/s':>9} {'p50 us':>8} {'p99 us':>8} {'max us':>9} {'sent':>9} {'lost':>7} "
          f"{'rx/tx':>7}  media-thread CPU %")
    ours: dict[int, dict[str, object]] = {}
    for n in args.n:
        if 2 * n + 64 > hard:
            print(f"{n:>8} skipped: needs {2 * n} sockets, limit {hard}")
            continue
        wire = not args.no_sipp and n <= args.sipp_max and os.geteuid() == 0
        r = run(n, args.seconds, args.realtime, wire)
        ours[n] = r
        print(f"{r['n']:>8} {r['pps']:>9.0f} {r['p50_us']:>8.0f} {r['p99_us']:>8.0f} {r['max_us']:>9.0f} "
              f"{r['tx']:>9} {r['lost']:>7} {r['rx'] / max(r['tx'], 1):>7.4f}  "
              + " / ".join(f"{c:.1f}" for c in r["cpu"])
              + (f"   on the wire: p50/p99/max {fmt_us(r['wire_p50_us'])}/{fmt_us(r['wire_p99_us'])}/"
                 f"{fmt_us(r['wire_max_us'])} us of {r['wire_packets']} packets" if "wire_p50_us" in r else ""),
              flush=True)
    theirs: dict[int, dict[str, object]] = {}
    if not args.no_sipp:
        for n in args.n:
            if n > args.sipp_max:
                continue
            try:
                s = sipp_pcap.run(n)
            except PermissionError:
                print("SIPp comparison skipped: the packet socket needs CAP_NET_RAW (root)")
                break
            theirs[n] = s
            if "error" in s:
                print(f"SIPp {n}: {s['error']}")
            else:
                print(f"SIPp {n:>5} calls: exit {s['rc']}, {s['packets']} of {s['expected']} audio packets "
                      f"(+ DTMF) from {s['flows']} flows, p50/p99/max {fmt_us(s['p50_us'])}/"
                      f"{fmt_us(s['p99_us'])}/{fmt_us(s['max_us'])} us, CPU {s['cpu']:.1f} %", flush=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print("send-time deviation (us) and CPU per thread; pysiptest = N bidirectional streams per engine (engine: "
          "its own clock; wire: one engine's packets, kernel timestamps), SIPp = N pcap plays (wire)")
    print(f"{'N':>6} | {'engine p50':>10} {'p99':>6} {'max':>6} {'lost':>5} {'CPU %':>6} | {'wire p50':>8} {'p99':>6} "
          f"{'max':>6} | {'SIPp p50':>8} {'p99':>6} {'max':>6} {'CPU %':>6}")
    for n in args.n:
        r = ours.get(n, {})
        s = theirs.get(n, {})
        if "error" in s:
            s = {}
        cpu = max(r["cpu"], default=float("nan")) if r else float("nan")
        print(f"{n:>6} | {fmt_us(r.get('p50_us')):>10} {fmt_us(r.get('p99_us')):>6} {fmt_us(r.get('max_us')):>6} "
              f"{r.get('lost', '-'):>5} {fmt_us(cpu):>6} | {fmt_us(r.get('wire_p50_us')):>8} "
              f"{fmt_us(r.get('wire_p99_us')):>6} {fmt_us(r.get('wire_max_us')):>6} | {fmt_us(s.get('p50_us')):>8} "
              f"{fmt_us(s.get('p99_us')):>6} {fmt_us(s.get('max_us')):>6} {fmt_us(s.get('cpu')):>6}")

if __name__ == "__main__":
    main()
