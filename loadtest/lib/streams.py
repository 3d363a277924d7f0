#!/usr/bin/env python3
"""The memory table of `loadtest/run.sh streams`.

Reads the results JSON that report.py wrote and prints what the open queue
event streams cost the server: its VmRSS and VmHWM before the streams
opened, once all were open, during and at the end of the hold, and after
they closed; its CPU in each phase; the `queue_event_streams` gauge; and
whether the resident-memory target was met (reported, never failing a run).

    streams.py RESULTS_JSON
"""

import json
import sys


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        result = json.load(f)
    for step in result.get("steps", []):
        if step.get("scenario") == "streams" and step.get("generator") == "sse_streams":
            print_streams(step.get("facts") or {})
    return 0


def mib(v):
    return "-" if v is None else f"{v:.1f}"


def print_streams(f):
    rss, hwm = f.get("rss_mib", {}), f.get("hwm_mib", {})
    gauge, cpu = f.get("gauge_queue_event_streams", {}), f.get("cpu_server_percent", {})
    print()
    print(f"== streams: {f.get('opened')} of {f.get('streams')} event streams opened in {f.get('open_seconds')} s "
          f"({f.get('open_concurrency')} at once), held {f.get('hold_seconds')} s")
    print(f"{'moment':<14}{'VmRSS MiB':>10}{'VmHWM MiB':>10}{'streams (gauge)':>16}{'cpu srv':>8}")
    for label, key, cpu_key in (
        ("before", "before", None),
        ("all open", "all_open", "open"),
        ("hold peak", "hold_peak", None),
        ("end of hold", "hold_end", "hold"),
        ("after close", "after_close", "close"),
    ):
        c = cpu.get(cpu_key) if cpu_key else None
        g = gauge.get(key)
        print(f"{label:<14}{mib(rss.get(key)):>10}{mib(hwm.get(key)):>10}"
              f"{'-' if g is None else int(g):>16}{'-' if c is None else f'{c:.0f}':>8}")
    print("(cpu srv: percent of one core over the phase that ends at that moment)")
    print(f"per stream: {f.get('rss_per_stream_kib')} KiB resident (all open − before, over the streams opened); "
          f"events: {f.get('events')} ({f.get('hold_events')} during the hold, {f.get('position_changes')} position "
          f"changes, {f.get('wait_only_changes')} with only the estimated wait changed, {f.get('keepalives')} keep-alives); ended ACTIVE {f.get('ended_active')}, EXPIRED "
          f"{f.get('ended_expired')}, lost {f.get('lost')}")
    peak = max((v for v in list(rss.values()) + list(hwm.values()) if v is not None), default=None)
    met = f.get("target_met")
    verdict = "met" if met else ("MISSED" if met is False else "unknown")
    print(f"target: server resident memory < {f.get('target_rss_mib')} MiB with the streams open: {verdict} "
          f"(peak {mib(peak)} MiB)")


if __name__ == "__main__":
    sys.exit(main())
