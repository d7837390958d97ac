#!/usr/bin/env python3
"""Prints the tables of bench/scaling.sh from the JSON results of ocp-metrics-bench runs.

Usage: scaling_table.py KIND:RESULT.json ...   (KIND is `events` or `series`)
"""

import json
import sys


def ours(path):
    with open(path) as f:
        d = json.load(f)
    return d, d["runs"][0]["ours"]


def q(o, name):
    return next(x for x in o["queries"] if x["name"] == name)


def fmt(v, digits=1):
    return f"{v:,.{digits}f}"


def main():
    events, series = [], []
    for arg in sys.argv[1:]:
        kind, path = arg.split(":", 1)
        (events if kind == "events" else series).append(ours(path))
    if events:
        print("| events (distinct) | ingest D, events/s | whole load, events/s | rt_5min p99 | "
              "rt_5min_drill p99 | batch_day p99 | batch_day_drill p99 | RSS after loading, MB "
              "(per million) | restart after SIGTERM, s | restart after kill -9, s | other "
              "processes' CPU, max |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for d, o in events:
            ing = {p["phase"]: p["run"] for p in o["ingest"]}
            sent = sum(r["events"] for r in ing.values())
            secs = sum(r["seconds"] for r in ing.values())
            fp = o["footprint"]
            rss = fp["rss_restarted_bytes"] / 2**20
            per_m = fp["rss_bytes_per_million_events"] / 1e6
            noise = max(o["foreign_cpu_share"].values())
            print(f"| {d['data']['unique']:,} | {fmt(ing['D']['events_per_second'], 0)} | "
                  f"{fmt(sent / secs, 0)} | {fmt(q(o, 'rt_5min')['latency']['p99'], 2)} ms | "
                  f"{fmt(q(o, 'rt_5min_drill')['latency']['p99'])} ms | "
                  f"{fmt(q(o, 'batch_day')['latency']['p99'], 2)} ms | "
                  f"{fmt(q(o, 'batch_day_drill')['latency']['p99'])} ms | "
                  f"{fmt(rss, 0)} ({fmt(per_m)}) | {fmt(fp['ready_after_sigterm_ms'] / 1000, 2)} | "
                  f"{fmt(fp['ready_after_kill9_ms'] / 1000, 2)} | {noise * 100:.1f}% |")
        print()
    series.sort(key=lambda x: q(x[1], "batch_day_drill")["series"])
    if series:
        print("| drilldown series (RT / batch) | rt_5min_drill p50 | rt_5min_drill p99 | "
              "batch_day_drill p50 | batch_day_drill p99 | answer bytes (RT / batch) | events "
              "(distinct) | other processes' CPU, max |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for d, o in series:
            rt, bd = q(o, "rt_5min_drill"), q(o, "batch_day_drill")
            noise = max(o["foreign_cpu_share"].values())
            print(f"| {rt['series']:,} / {bd['series']:,} | {fmt(rt['latency']['p50'])} ms | "
                  f"{fmt(rt['latency']['p99'])} ms | {fmt(bd['latency']['p50'])} ms | "
                  f"{fmt(bd['latency']['p99'])} ms | {rt['bytes'] / 2**20:.1f} MB / "
                  f"{bd['bytes'] / 2**20:.1f} MB | {d['data']['unique']:,} | {noise * 100:.1f}% |")


if __name__ == "__main__":
    main()
