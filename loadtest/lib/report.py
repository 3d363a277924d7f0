#!/usr/bin/env python3
"""Summary of one loadtest/run.sh run.

Reads the run's manifest (one JSON record per measured step, written by
run.sh), the k6 summaries, wrk reports and redis-benchmark CSVs it points
to, then prints the summary table and writes everything as one JSON file.

    report.py MANIFEST OUT_JSON

Exits 1 when the run failed: a k6 threshold (an invariant violation, an
error rate or a latency bound), a failed `ticketrush verify`, a write-behind
backlog that did not drain, or a step that could not run.
"""

import csv
import json
import statistics
import sys

# Targets of the ratios (BENCHMARKS.md): reported, never failing a run,
# because a shared 2-core machine is too noisy for a hard bound.
TARGETS = {"poll_vs_healthz": 0.60, "hold_vs_ceiling": 0.75}
P99_TARGET_MS = 5.0


def load_k6(rec):
    with open(rec["file"], encoding="utf-8") as f:
        summary = json.load(f)
    rows = summary["endpoints"]
    if rec.get("endpoint"):
        rows = [r for r in rows if r["name"] == rec["endpoint"]]
    return rows, summary


def load_wrk(rec):
    with open(rec["file"], encoding="utf-8") as f:
        for line in f:
            if line.startswith("WRK_JSON "):
                w = json.loads(line[len("WRK_JSON "):])
                errors = sum(w["errors"][k] for k in ("connect", "read", "write", "timeout"))
                if rec.get("conflicts_ok"):
                    # hold.lua tells 409s (answers) from other 4xx and 5xx.
                    errors += w["status_5xx"] + w["status_4xx_other"]
                else:
                    errors += w["errors"]["non_2xx_3xx"]
                row = {
                    "name": rec["endpoint"],
                    "requests": w["requests"],
                    "seconds": w["seconds"],
                    "rps": w["rps"],
                    "p50_ms": w["p50_ms"],
                    "p95_ms": w["p95_ms"],
                    "p99_ms": w["p99_ms"],
                    "max_ms": w["max_ms"],
                    "failed": errors,
                    "status_409": w["status_409"],
                }
                return [row], w
    raise ValueError(f"no WRK_JSON line in {rec['file']}")


def load_redis(rec):
    with open(rec["file"], encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"no redis-benchmark result in {rec['file']}")
    r = rows[-1]
    num = lambda k: float(r[k]) if r.get(k) not in (None, "") else None  # noqa: E731
    row = {
        "name": rec["endpoint"],
        "requests": rec.get("requests"),
        "rps": round(num("rps")),
        "p50_ms": num("p50_latency_ms"),
        "p95_ms": num("p95_latency_ms"),
        "p99_ms": num("p99_latency_ms"),
        "max_ms": num("max_latency_ms"),
        "failed": 0,
    }
    return [row], r


LOADERS = {"k6": load_k6, "wrk": load_wrk, "redis": load_redis}


def fmt(v, width, digits=None):
    if v is None:
        s = "-"
    elif digits is not None:
        s = f"{v:.{digits}f}"
    else:
        s = str(v)
    return s.rjust(width)


def measured(steps, scenario, step, generator):
    """The measured runs of one step, in order (several when run in rounds)."""
    return [s for s in steps
            if s["scenario"] == scenario and s["step"] == step and s["generator"] == generator and s["rows"]]


def ratio(steps, scenario, num, den, generator):
    """The ratio of two steps' rates, or None. Steps run in rounds (the wrk
    steps: measure, ceiling, measure, ceiling, ...) are paired by round and
    the median of the rounds' ratios is the value."""

    def found(step):
        return {s.get("round"): s for s in measured(steps, scenario, step, generator)}

    nums, dens = found(num), found(den)
    rounds = []
    for r in sorted(set(nums) & set(dens), key=lambda r: r or 0):
        a, b = nums[r]["rows"][0]["rps"], dens[r]["rows"][0]["rps"]
        if a and b:
            rounds.append(round(a / b, 3))
    if not rounds:
        return None
    # The generator set the pace when it used more CPU than the server it
    # drove: the ratio then measures the generator's cost per request, not
    # the server's. (A step that drove no server of ours, redis-benchmark's,
    # shows none.)
    busy = [s.get("cpu") or {} for s in (*nums.values(), *dens.values())]
    bound = any(c.get("server") and (c.get("generator") or 0) > c["server"] for c in busy)
    return {"value": statistics.median(rounds), "rounds": rounds, "generator_bound": bound}


def main():
    manifest, out_path = sys.argv[1], sys.argv[2]
    with open(manifest, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    run = next((r for r in records if r["kind"] == "run"), {})
    steps, extras, failures = [], [], []
    for rec in records:
        kind = rec["kind"]
        if kind in LOADERS:
            step = dict(rec)
            try:
                step["rows"], raw = LOADERS[kind](rec)
                if kind == "k6":
                    step["facts"] = raw.get("facts", {})
                    step["thresholds_failed"] = raw.get("thresholds_failed", [])
            except (OSError, ValueError, KeyError) as e:
                step["rows"] = []
                step["error"] = str(e)
                failures.append(f"{rec['scenario']}/{rec['step']}: no result ({e})")
            if rec.get("exit", 0) != 0:
                failures.append(f"{rec['scenario']}/{rec['step']} ({rec['generator']}): exit {rec['exit']}")
            steps.append(step)
        elif kind != "run":
            extras.append(rec)
            if rec.get("ok") is False:
                failures.append(f"{rec['scenario']}/{kind}: {rec.get('detail', 'failed')}")

    ratios = []
    for gen in ("k6", "wrk"):
        for scen, num, den, key in (
            ("queue", "poll", "healthz", "poll_vs_healthz"),
            ("hold", "hold", "ceiling", "hold_vs_ceiling"),
        ):
            r = ratio(steps, scen, num, den, gen)
            if r is not None:
                ratios.append({"ratio": key, "generator": gen, **r, "target": TARGETS[key]})
    for scen, num in (("queue", "evalsha_get_token"), ("hold", "evalsha_hold")):
        r = ratio(steps, scen, num, "evalsha_trivial", "redis-benchmark")
        if r is not None:
            ratios.append({"ratio": f"{num}_vs_trivial", "generator": "redis-benchmark", **r, "target": None})

    result = {**run, "steps": steps, "extras": extras, "ratios": ratios, "failures": failures, "ok": not failures}
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print_table(result)
    return 0 if result["ok"] else 1


def above_p99_target(p99_ms):
    return " ABOVE TARGET" if p99_ms >= P99_TARGET_MS else ""


def print_table(result):
    print()
    print(f"== summary: {result.get('scenarios', '')} on {result.get('date', '')} "
          f"({result.get('profile', '')} build, {result.get('cpus', '?')} cores, commit {result.get('commit', '?')})")
    head = (f"{'scenario':<9}{'step':<22}{'generator':<16}{'requests':>9}{'req/s':>8}{'p50 ms':>9}"
            f"{'p95 ms':>9}{'p99 ms':>9}{'errors':>7}{'cpu srv':>8}{'cpu redis':>10}{'cpu gen':>8}")
    print(head)
    for s in result["steps"]:
        cpu = s.get("cpu", {})
        rows = s["rows"] or [{"name": s["step"]}]
        for i, r in enumerate(rows):
            label = s["step"] if len(s["rows"]) <= 1 else r["name"]
            if s.get("round"):
                label = f"{label} #{s['round']}"
            # CPU is measured per step: shown on its first row.
            c = cpu if i == 0 else {}
            print(f"{s['scenario']:<9}{label:<22}{s['generator']:<16}{fmt(r.get('requests'), 9)}"
                  f"{fmt(r.get('rps'), 8)}{fmt(r.get('p50_ms'), 9, 2)}{fmt(r.get('p95_ms'), 9, 2)}"
                  f"{fmt(r.get('p99_ms'), 9, 2)}{fmt(r.get('failed'), 7)}"
                  f"{fmt(c.get('server'), 8, 0)}{fmt(c.get('redis'), 10, 0)}{fmt(c.get('generator'), 8, 0)}")
    print("(cpu: percent of one core over the step's wall time; 200 = both cores)")
    for s in result["steps"]:
        if s.get("listen_overflows"):
            print(f"{s['scenario']}/{s['step']} ({s['generator']}): the kernel dropped {s['listen_overflows']} "
                  "connections on a full accept queue (ListenOverflows)")
    loads = [f"{s['scenario']}/{s['step']}{' #' + str(s['round']) if s.get('round') else ''}/{s['generator']}: "
             f"{s['load_after']}" for s in result["steps"] if s.get("load_after")]
    if loads:
        print("load average (1, 5, 15 min) after each step: " + "; ".join(loads))
    for s in result["steps"]:
        facts = s.get("facts") or {}
        if s["scenario"] in ("rush", "smoke") and facts:
            keys = ("users", "capacity", "seats_sold", "payments_ok", "sold_out_seconds", "hold_conflicts",
                    "sold_out_seen", "gave_up", "queue_wait_p50_ms", "queue_wait_max_ms", "violations",
                    "ledger_seats", "ledger_payments", "ledger_money", "users_unaccounted")
            print(f"{s['scenario']}: " + ", ".join(f"{k}={facts.get(k)}" for k in keys))
    for e in result["extras"]:
        if e["kind"] == "writebehind":
            print(f"{e['scenario']}: write-behind at end of load: lag {e.get('lag_seconds')} s, backlog "
                  f"{e.get('backlog')} (peaks during the load, sampled each second: lag "
                  f"{e.get('peak_lag_seconds')} s, backlog {e.get('peak_backlog')}); drained in {e.get('drain_seconds')} s")
        elif e["kind"] == "verify":
            print(f"{e['scenario']}: ticketrush verify: {e.get('detail')}")
    steady = [measured(result["steps"], "hold", name, "k6") for name in ("hold_steady", "ceiling_steady")]
    if all(steady):
        hold, floor = (runs[0]["rows"][0] for runs in steady)
        print(f"latency at a steady rate, hold vs ceiling [k6]: p50 {hold['p50_ms']:.2f} vs {floor['p50_ms']:.2f} ms, "
              f"p95 {hold['p95_ms']:.2f} vs {floor['p95_ms']:.2f} ms, p99 {hold['p99_ms']:.2f} vs "
              f"{floor['p99_ms']:.2f} ms (target: hold p99 < {P99_TARGET_MS:g} ms)"
              f"{above_p99_target(hold['p99_ms'])}")
    # The tail with every connection busy: the wrk rounds.
    p99 = {name: [s["rows"][0]["p99_ms"] for s in measured(result["steps"], "hold", name, "wrk")]
           for name in ("hold", "ceiling")}
    if p99["hold"]:
        value = statistics.median(p99["hold"])
        floor = f" (ceiling: {', '.join(f'{x:.2f}' for x in p99['ceiling'])} ms)" if p99["ceiling"] else ""
        print(f"hold p99 at {result.get('wrk_connections', '?')} connections, closed loop [wrk]: {value:.2f} ms, "
              f"median of rounds {', '.join(f'{x:.2f}' for x in p99['hold'])} ms{floor} "
              f"(target < {P99_TARGET_MS:g} ms){above_p99_target(value)}")
    for r in result["ratios"]:
        target = f" (target >= {r['target']:.0%})" if r["target"] else ""
        rounds = r.get("rounds") or []
        spread = (f", median of {len(rounds)} alternating rounds: " + ", ".join(f"{x:.0%}" for x in rounds)
                  if len(rounds) > 1 else "")
        if r.get("generator_bound"):
            verdict = (f" GENERATOR-BOUND ({r['generator']} used more CPU than the server: the rates are "
                       f"{r['generator']}'s, not the server's)")
        elif r["target"] and r["value"] < r["target"]:
            verdict = " BELOW TARGET"
        else:
            verdict = ""
        print(f"ratio {r['ratio']} [{r['generator']}]: {r['value']:.0%}{spread}{target}{verdict}")
    if result["failures"]:
        print("FAILED:")
        for f in result["failures"]:
            print(f"  {f}")
    else:
        print("all checks passed")


if __name__ == "__main__":
    sys.exit(main())
