//! Measures the ClickHouse baseline: the same ingest slices, freshness, deduplication, the same
//! queries in SQL and a restart, into one [`ChOut`].

use super::ClickHouse;
use crate::data::{self, DataStats, GROUP};
use crate::http::{self, IngestRun};
use crate::ours::PROBE_GROUP;
use crate::procs::{Noise, wait_quiet};
use crate::queries::{self, QuerySpec, Rows};
use crate::report::{self, QueryTiming};
use crate::stats::{self, Freshness, FreshnessSummary, ms};
use crate::{Phase, Scale, phases_json, say};
use anyhow::bail;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// What ClickHouse measured, and its answers as rows.
#[derive(Debug)]
pub struct ChOut {
    pub version: String,
    pub ingest: Vec<(Phase, IngestRun)>,
    pub raw_rows: u64,
    pub rows: u64,
    /// Rows of every query over the deduplicated raw events, in suite order.
    pub rows_of: Vec<Rows>,
    pub queries: Vec<QueryTiming>,
    /// Rows of every query over the rollup tables, in suite order.
    pub rollup_rows_of: Vec<Rows>,
    pub rollup_queries: Vec<QueryTiming>,
    /// Queries per second over the rollups, and over the raw events.
    pub qps: f64,
    pub qps_raw: f64,
    /// Seconds of the deduplication (`raw` into `ev`) and of filling the rollups from `ev`.
    pub dedupe_seconds: f64,
    pub rollup_seconds: f64,
    pub fresh_idle: FreshnessSummary,
    pub rss_per_million: f64,
    pub disk_per_event: f64,
    pub ready_ms: f64,
    /// Share of all CPU time used by other processes during each timed phase.
    pub noise: Noise,
    pub json: Value,
}

/// Rows per insert: ClickHouse gets every slice in batches of this size, whatever the batch
/// size of ours in that phase (small inserts are an anti-pattern there).
const INSERT_ROWS: usize = 1000;
/// Time for background merges to settle before sizes are read.
const MERGES_TIMEOUT: Duration = Duration::from_secs(300);
/// How long an inserted probe row may take to be counted before the run fails.
const PROBE_VISIBLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Clients of the queries-per-second measurement.
const CLIENTS: usize = 8;
/// The query whose answer is compared across the restart (an RT drilldown).
const RESTART_CHECK_QUERY: usize = 2;

/// tmpfs, where ClickHouse's data goes when the machine has it.
const SHM: &str = "/dev/shm";

/// ClickHouse's directory: on tmpfs (`/dev/shm`) if there is one, its best case and a stable
/// one (on this VM's ext4, many small parts created and deleted made its inserts swing
/// several-fold: see docs/performance.md); else under `work`. Ours stays on the disk of `work`
/// with an fsync per request.
fn data_dir(work: &Path) -> std::path::PathBuf {
    if Path::new(SHM).is_dir() {
        Path::new(SHM).join(format!(
            "ocp-metrics-bench-clickhouse-{}",
            std::process::id()
        ))
    } else {
        work.join("clickhouse")
    }
}

/// Runs every ClickHouse measurement on a fresh directory under `work`, asking the `specs`
/// that ocp-metrics was asked.
pub fn run_clickhouse(
    scale: &Scale,
    work: &Path,
    data_path: &Path,
    data: &DataStats,
    specs: &[QuerySpec],
) -> anyhow::Result<ChOut> {
    let dir = data_dir(work);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    say(format!("ClickHouse data in {}", dir.display()));
    let (mut ch, ready_empty) = ClickHouse::start(&dir)?;
    let version = ch.exec("SELECT version()")?.trim().to_string();
    say(format!(
        "ClickHouse {version} ready in {:.0} ms at {}",
        ms(ready_empty),
        ch.url
    ));
    ch.create_tables()?;
    std::thread::sleep(Duration::from_millis(300));
    let rss_empty = ch.proc.rss_bytes();

    let mut noise = Noise::default();
    let ingest = insert(&ch, scale, data_path, &mut noise)?;
    let agent = http::agent();
    let fresh = probe_idle(&ch, &agent, scale.probes)?;
    let loaded = load(&ch)?;
    let rss_loaded = ch.proc.rss_bytes();
    let sqls: Vec<String> = specs
        .iter()
        .map(|q| q.sql(queries::Dialect::ClickHouse, "ev", GROUP))
        .collect();
    let rollups = queries::rollups(specs);
    let rollup_seconds = ch.create_rollups(&rollups, specs)?;
    ch.wait_for_merges(MERGES_TIMEOUT)?;
    say(format!(
        "ClickHouse: {} rollup tables filled from ev in {rollup_seconds:.1} s",
        rollups.len()
    ));
    let rollup_sqls: Vec<String> = specs
        .iter()
        .map(|q| q.rollup_sql(queries::Dialect::ClickHouse, GROUP))
        .collect::<anyhow::Result<_>>()?;
    let (rollup_rows_of, rollup_timings) = time_queries(
        &ch,
        &agent,
        scale,
        specs,
        &rollup_sqls,
        "rollup",
        &mut noise,
    )?;
    let qps = queries_per_second(&ch, scale, &rollup_sqls, "rollup", &mut noise)?;
    let (rows_of, timings) = time_queries(&ch, &agent, scale, specs, &sqls, "raw", &mut noise)?;
    let qps_raw = queries_per_second(&ch, scale, &sqls, "raw", &mut noise)?;
    let ready = ch.restart()?;
    // The queries have no ORDER BY: compare the rows as sets.
    let sorted = |mut rows: Rows| {
        rows.sort();
        rows
    };
    if sorted(ch.rows(&sqls[RESTART_CHECK_QUERY])?) != sorted(rows_of[RESTART_CHECK_QUERY].clone())
    {
        bail!("ClickHouse answered differently after its restart");
    }
    say(format!("ClickHouse restart: ready in {:.0} ms", ms(ready)));
    ch.proc.kill9();
    if dir.starts_with(SHM) {
        let _ = std::fs::remove_dir_all(&dir);
    }

    let millions = data.unique as f64 / 1e6;
    let rss_per_million = rss_loaded.saturating_sub(rss_empty) as f64 / millions;
    let disk_per_event = loaded.raw_bytes as f64 / data.lines as f64;
    let fresh_idle = fresh.summary();
    let json = json!({
        "version": version,
        "ingest": phases_json(&ingest),
        "freshness_idle": fresh_idle,
        "raw_rows": loaded.raw_rows,
        "rows": loaded.rows,
        "raw_bytes": loaded.raw_bytes,
        "dedup_bytes": loaded.ev_bytes,
        "dedupe_seconds": loaded.dedupe_seconds,
        "rollup_seconds": rollup_seconds,
        "queries_raw": timings,
        "queries_rollup": rollup_timings,
        "qps_8_clients_rollup": qps,
        "qps_8_clients_raw": qps_raw,
        "rss_empty_bytes": rss_empty,
        "rss_loaded_bytes": rss_loaded,
        "ready_after_restart_ms": ms(ready),
        "foreign_cpu_share": noise.json(),
    });
    Ok(ChOut {
        version,
        ingest,
        raw_rows: loaded.raw_rows,
        rows: loaded.rows,
        rows_of,
        queries: timings,
        rollup_rows_of,
        rollup_queries: rollup_timings,
        qps,
        qps_raw,
        dedupe_seconds: loaded.dedupe_seconds,
        rollup_seconds,
        fresh_idle,
        rss_per_million,
        disk_per_event,
        ready_ms: ms(ready),
        noise,
        json,
    })
}

/// The four slices, with each phase's producers, in [`INSERT_ROWS`]-row inserts into `raw`.
fn insert(
    ch: &ClickHouse,
    scale: &Scale,
    data_path: &Path,
    noise: &mut Noise,
) -> anyhow::Result<Vec<(Phase, IngestRun)>> {
    let pids = [ch.proc.pid()];
    crate::ingest_phases(
        scale,
        data_path,
        |_| INSERT_ROWS,
        |phase, batches| {
            wait_quiet(&pids, &format!("ClickHouse insert {}", phase.label));
            let run = noise.meter(format!("ingest {}", phase.label), &pids, || {
                http::ingest(&ch.ingest_target(), batches, phase.producers, INSERT_ROWS)
            })?;
            say(format!(
                "ClickHouse insert {} (batch 1000, {} producer(s)): {} rows in {:.2} s = {} rows/s; p50 {:.2} ms p99 {:.2} ms",
                phase.label,
                phase.producers,
                run.events,
                run.seconds,
                report::num(run.events_per_second),
                run.latency.p50,
                run.latency.p99
            ));
            Ok(run)
        },
    )
}

/// Freshness: `probes` rows inserted one after the other, each counted until it is visible.
fn probe_idle(ch: &ClickHouse, agent: &ureq::Agent, probes: usize) -> anyhow::Result<Freshness> {
    let mut fresh = Freshness::default();
    for n in 0..probes {
        fresh.push(probe(ch, agent, n)?);
    }
    Ok(fresh)
}

/// One probe: (acknowledgement, 200-to-visible).
fn probe(ch: &ClickHouse, agent: &ureq::Agent, n: usize) -> anyhow::Result<(Duration, Duration)> {
    let line = format!(
        "{{\"id\":\"probe-{n}\",\"type\":\"miniapp_end\",\"time\":\"{}\",\"group\":\"{}\",\"session_id\":\"p\",\"channel\":\"omIVR\",\"region\":\"us1\"}}\n",
        data::rfc3339_ms(jiff::Timestamp::now().as_millisecond()),
        PROBE_GROUP
    );
    let t0 = Instant::now();
    let target = ch.ingest_target();
    let (status, body) = http::send(agent, "POST", &target.url, &[], Some(line.as_bytes()))?;
    if status != 200 {
        bail!(
            "ClickHouse probe insert: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let acked = Instant::now();
    let count =
        format!("SELECT count() FROM raw WHERE `group` = '{PROBE_GROUP}' AND id = 'probe-{n}'");
    while ch.count(&count)? < 1 {
        if acked.elapsed() > PROBE_VISIBLE_TIMEOUT {
            bail!("ClickHouse probe not visible after 30 s");
        }
    }
    Ok((acked - t0, acked.elapsed()))
}

/// Rows and sizes after the load, and the deduplication into `ev`.
struct Loaded {
    raw_rows: u64,
    raw_bytes: u64,
    dedupe_seconds: f64,
    rows: u64,
    ev_bytes: u64,
}

/// Counts and sizes `raw`, deduplicates it into `ev`, and counts and sizes that.
fn load(ch: &ClickHouse) -> anyhow::Result<Loaded> {
    let raw_rows = ch.count(&format!(
        "SELECT count() FROM raw WHERE `group` = '{GROUP}'"
    ))?;
    ch.wait_for_merges(MERGES_TIMEOUT)?;
    let raw_bytes = ch.table_bytes("raw")?;
    let dedupe_seconds = ch.dedupe()?;
    let rows = ch.count(&format!("SELECT count() FROM ev WHERE `group` = '{GROUP}'"))?;
    ch.wait_for_merges(MERGES_TIMEOUT)?;
    let ev_bytes = ch.table_bytes("ev")?;
    say(format!(
        "ClickHouse: {raw_rows} raw rows ({} MB on disk), deduplicated to {rows} in {dedupe_seconds:.1} s",
        raw_bytes >> 20
    ));
    Ok(Loaded {
        raw_rows,
        raw_bytes,
        dedupe_seconds,
        rows,
        ev_bytes,
    })
}

/// Every query's rows and latency.
fn time_queries(
    ch: &ClickHouse,
    agent: &ureq::Agent,
    scale: &Scale,
    specs: &[QuerySpec],
    sqls: &[String],
    over: &str,
    noise: &mut Noise,
) -> anyhow::Result<(Vec<Rows>, Vec<QueryTiming>)> {
    let pids = [ch.proc.pid()];
    // As for ocp-metrics: background merges after the load end before the queries are timed.
    crate::procs::wait_settled(ch.proc.pid(), &format!("ClickHouse queries ({over})"));
    wait_quiet(&pids, &format!("ClickHouse queries ({over})"));
    noise.meter(format!("query latency ({over})"), &pids, || {
        let mut rows_of = Vec::new();
        let mut timings = Vec::new();
        for (spec, sql) in specs.iter().zip(sqls) {
            let r = ch.rows(sql)?;
            let latency = stats::sample(scale.baseline_iterations, || ch.time(agent, sql))?;
            say(format!(
                "ClickHouse  {:<20} {over:<6} p50 {:.1} ms p99 {:.1} ms ({} rows)",
                spec.name,
                latency.p50,
                latency.p99,
                r.len()
            ));
            timings.push(QueryTiming {
                name: spec.name,
                latency,
                series: 0,
                buckets: r.len(),
                bytes: 0,
            });
            rows_of.push(r);
        }
        Ok((rows_of, timings))
    })
}

/// Queries per second with 8 clients, each asking the queries in turn.
fn queries_per_second(
    ch: &ClickHouse,
    scale: &Scale,
    sqls: &[String],
    over: &str,
    noise: &mut Noise,
) -> anyhow::Result<f64> {
    let pids = [ch.proc.pid()];
    wait_quiet(&pids, &format!("ClickHouse queries per second ({over})"));
    let qps = noise.meter(format!("queries per second ({over})"), &pids, || {
        http::throughput(
            CLIENTS,
            Duration::from_secs_f64(scale.qps_seconds),
            |agent, c, i| ch.time(agent, &sqls[(c + i) % sqls.len()]).map(|_| ()),
        )
    })?;
    say(format!(
        "ClickHouse: {qps:.1} queries/s with 8 clients ({over})"
    ));
    Ok(qps)
}
