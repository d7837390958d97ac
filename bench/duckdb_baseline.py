#!/usr/bin/env python3
"""The DuckDB baseline of the ocp-metrics benchmark.

Driven by the Rust harness (crates/ocp-metrics-bench): reads a JSON spec naming the NDJSON file
of generated events and the benchmark queries as DuckDB SQL, loads the events into a DuckDB
database file, keeps one row per (group, id) as ocp-metrics does, runs every query (its rows for
the equality check, then timed repetitions), measures queries per second under concurrent
clients, and writes a JSON result.

Usage: duckdb_baseline.py SPEC.json RESULT.json
"""

import json
import os
import sys
import threading
import time

import duckdb

# Every wire field (docs/api.md section 3.3), read as text; typed and defaulted below.
COLUMNS = {
    "id": "VARCHAR", "type": "VARCHAR", "time": "VARCHAR", "group": "VARCHAR",
    "session_id": "VARCHAR", "channel": "VARCHAR", "region": "VARCHAR", "test": "BOOLEAN",
    "started_at": "VARCHAR", "flow_name": "VARCHAR", "flow_id": "VARCHAR",
    "flow_type": "VARCHAR", "locale": "VARCHAR", "root": "BOOLEAN", "outcome": "VARCHAR",
    "miniapp_name": "VARCHAR", "miniapp_id": "VARCHAR", "miniapp_type": "VARCHAR",
    "result": "VARCHAR", "fail_reason": "VARCHAR", "agent_requests": "BIGINT",
    "no_inputs": "BIGINT", "no_matches": "BIGINT", "system_errors": "BIGINT",
    "critical_errors": "BIGINT",
}


def load(con, path):
    cols = ", ".join(f"'{k}': '{v}'" for k, v in COLUMNS.items())
    # `s` is the attribution instant: the started_at of end events, else the event time.
    con.execute(f"""
        CREATE TABLE raw AS SELECT
            id, type, CAST(time AS TIMESTAMPTZ) AS t,
            CAST(coalesce(started_at, time) AS TIMESTAMPTZ) AS s,
            "group", session_id, channel, region, coalesce(test, false) AS test,
            flow_name, flow_id, coalesce(flow_type, 'orchestrator') AS flow_type, locale,
            coalesce(root, true) AS root, outcome, miniapp_name, miniapp_id, miniapp_type,
            result, coalesce(fail_reason, '') AS fail_reason,
            coalesce(agent_requests, 0) AS agent_requests, coalesce(no_inputs, 0) AS no_inputs,
            coalesce(no_matches, 0) AS no_matches, coalesce(system_errors, 0) AS system_errors,
            coalesce(critical_errors, 0) AS critical_errors
        FROM read_json('{path}', format = 'newline_delimited', columns = {{{cols}}})
    """)


def timed(con, sql):
    t = time.perf_counter()
    con.execute(sql).fetchall()
    return (time.perf_counter() - t) * 1000.0


def main():
    spec_path, out_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    db = spec["db_path"]
    for p in (db, db + ".wal"):
        if os.path.exists(p):
            os.remove(p)
    con = duckdb.connect(db)
    out = {"version": duckdb.__version__}

    t = time.perf_counter()
    load(con, spec["ndjson_path"])
    out["load_seconds"] = time.perf_counter() - t
    out["raw_rows"] = con.execute("SELECT count(*) FROM raw").fetchone()[0]

    # One row per (group, id), stored in time order (zone maps then skip what a window leaves out).
    t = time.perf_counter()
    con.execute('CREATE TABLE ev AS SELECT * FROM '
                '(SELECT DISTINCT ON ("group", id) * FROM raw) ORDER BY s')
    out["dedupe_seconds"] = time.perf_counter() - t
    out["rows"] = con.execute("SELECT count(*) FROM ev").fetchone()[0]
    con.execute("DROP TABLE raw")

    # The rollups: per family, at the slot grain of ocp-metrics and with its dimensions, filled
    # from the deduplicated events, in time order.
    t = time.perf_counter()
    for r in spec["rollups"]:
        con.execute(f'CREATE TABLE {r["table"]} AS {r["sql"]} ORDER BY slot')
    out["rollup_seconds"] = time.perf_counter() - t
    con.execute("CHECKPOINT")
    out["db_bytes"] = os.path.getsize(db)

    results = {}
    for q in spec["queries"]:
        res = {}
        for key, rows_key, lat_key in (("rollup_sql", "rollup_rows", "rollup_latencies_ms"),
                                       ("sql", "rows", "latencies_ms")):
            rows = con.execute(q[key]).fetchall()
            res[rows_key] = [[str(v) for v in r] for r in rows]
            res[lat_key] = [timed(con, q[key]) for _ in range(spec["iterations"])]
        results[q["name"]] = res
    out["queries"] = results
    out["qps"] = qps(con, spec, [q["rollup_sql"] for q in spec["queries"]])
    out["qps_raw"] = qps(con, spec, [q["sql"] for q in spec["queries"]])
    con.close()
    with open(out_path, "w") as f:
        json.dump(out, f)


def qps(con, spec, sqls):
    """Queries per second: each client thread has its own cursor and cycles through `sqls`."""
    clients, seconds = spec["qps_clients"], spec["qps_seconds"]
    done = [0] * clients
    deadline = time.perf_counter() + seconds

    def client(c):
        cur = con.cursor()
        i = c
        while time.perf_counter() < deadline:
            cur.execute(sqls[i % len(sqls)]).fetchall()
            done[c] += 1
            i += 1

    t = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sum(done) / (time.perf_counter() - t)


if __name__ == "__main__":
    main()
