//! `ocp-metrics-bench`: the side-by-side benchmark of ocp-metrics, ClickHouse and DuckDB.
//!
//! One run generates one data set (see [`data`]), then, one system at a time so that they never
//! compete for the two cores:
//!
//! 1. **ocp-metrics**: durable HTTP NDJSON ingest in four phases (batch 100 and 1,000, 1 and 8
//!    producers; each phase sends its own slice of the file), freshness probes while loaded and
//!    idle, the dashboard queries (p50/p99, and queries per second under 8 clients),
//!    footprint (RSS, disk), restart-to-ready after `kill -9` and after SIGTERM, and the memory
//!    of extra active series.
//! 2. **ClickHouse**: the same slices over its HTTP interface with `JSONEachRow` in 1,000-row
//!    batches, one row per `(group, id)` kept in SQL, the same answers in SQL.
//! 3. **DuckDB**: the same file loaded with `read_json`, deduplicated, the same answers in SQL.
//!
//! Every baseline answer is compared with ours bucket by bucket; the run exits 1 if any
//! disagrees (or if ours disagrees with itself across a restart), 2 on any other failure, and 0
//! otherwise. Timing targets are reported, never asserted.

mod clickhouse;
mod data;
mod duck;
mod http;
mod ours;
mod procs;
mod queries;
mod report;
mod stats;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use data::{Batch, DataSize, DataStats, GROUP};
use http::IngestRun;
use jiff::SignedDuration;
use ours::{Freshness, Ours};
use queries::{Norm, QuerySpec};
use report::{Row, Target};
use serde_json::{Value, json};
use stats::{CpuMeter, Latencies, Summary};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Small data, few repetitions: checks that everything runs and agrees (CI).
    Smoke,
    /// 10 million events: the numbers of docs/performance.md.
    Full,
}

#[derive(Debug, Parser)]
#[command(
    name = "ocp-metrics-bench",
    about = "Benchmarks ocp-metrics side by side with ClickHouse and DuckDB on the same events"
)]
struct Args {
    #[arg(long, value_enum, default_value = "smoke")]
    mode: Mode,
    /// Multiplies the event counts of the mode (e.g. 0.1 for a tenth of full).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// The `ocp-metrics` binary.
    #[arg(long, default_value = "target/release/ocp-metrics")]
    server_bin: PathBuf,
    /// Working directory for the data file and the stores (default: a new one under /tmp,
    /// removed at the end unless --keep).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    #[arg(long)]
    keep: bool,
    #[arg(long)]
    no_clickhouse: bool,
    #[arg(long)]
    no_duckdb: bool,
    #[arg(long, default_value = "python3")]
    python: String,
    /// The DuckDB runner (default: bench/duckdb_baseline.py of this repository).
    #[arg(long)]
    duckdb_script: Option<PathBuf>,
    /// Write the full results as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Write the report (Markdown) here.
    #[arg(long)]
    markdown_out: Option<PathBuf>,
    /// Record `perf` profiles of the server (ingest phase D, and the query phase) into the
    /// work directory.
    #[arg(long)]
    perf: bool,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Before each timed phase, wait up to this many seconds for other processes to leave the
    /// CPUs alone (under 5% of the CPU time over a second). Default: 120 in full mode, 0 in
    /// smoke mode.
    #[arg(long)]
    quiet_wait: Option<u64>,
    /// Adds one to one bucket of every baseline answer before the comparison: shows that a
    /// disagreement fails the run (exit status 1).
    #[arg(long, hide = true)]
    inject_disagreement: bool,
}

/// How much of everything a mode does.
#[derive(Debug, Clone, Copy)]
struct Scale {
    size: DataSize,
    /// Events of ingest phases A, B and C; phase D sends the rest.
    slices: [u64; 3],
    ours_iterations: usize,
    baseline_iterations: usize,
    qps_seconds: f64,
    series_test: usize,
    probes: usize,
}

impl Scale {
    fn of(mode: Mode, factor: f64) -> Scale {
        let base = match mode {
            Mode::Full => Scale {
                size: DataSize {
                    history_sim: 5_500_000,
                    history_tail: 1_500_000,
                    recent_sim: 2_000_000,
                    recent_tail: 1_000_000,
                },
                slices: [300_000, 1_200_000, 1_500_000],
                ours_iterations: 200,
                baseline_iterations: 10,
                qps_seconds: 10.0,
                series_test: 20_000,
                probes: 100,
            },
            Mode::Smoke => Scale {
                size: DataSize {
                    history_sim: 60_000,
                    history_tail: 20_000,
                    recent_sim: 40_000,
                    recent_tail: 20_000,
                },
                slices: [10_000, 20_000, 30_000],
                ours_iterations: 10,
                baseline_iterations: 3,
                qps_seconds: 2.0,
                series_test: 1_000,
                probes: 10,
            },
        };
        let f = |n: u64| ((n as f64) * factor).round() as u64;
        Scale {
            size: DataSize {
                history_sim: f(base.size.history_sim),
                history_tail: f(base.size.history_tail),
                recent_sim: f(base.size.recent_sim),
                recent_tail: f(base.size.recent_tail),
            },
            slices: base.slices.map(f),
            ..base
        }
    }
}

/// One ingest phase: a slice of the file sent with a batch size and a number of producers.
#[derive(Debug, Clone, Copy)]
struct Phase {
    label: &'static str,
    batch: usize,
    producers: usize,
    /// Events of the slice (u64::MAX: the rest of the file).
    events: u64,
}

fn phases(scale: &Scale) -> [Phase; 4] {
    [
        Phase {
            label: "A",
            batch: 100,
            producers: 1,
            events: scale.slices[0],
        },
        Phase {
            label: "B",
            batch: 100,
            producers: 8,
            events: scale.slices[1],
        },
        Phase {
            label: "C",
            batch: 1000,
            producers: 1,
            events: scale.slices[2],
        },
        Phase {
            label: "D",
            batch: 1000,
            producers: 8,
            events: u64::MAX,
        },
    ]
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("\nFAILED: answers disagree (see above)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("\nbench failed: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn say(msg: impl AsRef<str>) {
    eprintln!("[bench {}] {}", clock(), msg.as_ref());
}

fn clock() -> String {
    jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .strftime("%H:%M:%S")
        .to_string()
}

/// Seconds to wait for a quiet machine before a timed phase (see `--quiet-wait`).
static QUIET_WAIT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Waits (up to `--quiet-wait`) until processes other than `pids` and this one use under 5% of
/// the CPU time over a second.
fn wait_quiet(pids: &[u32], phase: &str) {
    let max = Duration::from_secs(QUIET_WAIT.load(Ordering::Relaxed));
    if max.is_zero() {
        return;
    }
    let t = Instant::now();
    let mut share = 1.0;
    while t.elapsed() < max {
        let m = CpuMeter::start(pids);
        std::thread::sleep(Duration::from_secs(1));
        share = m.foreign_share();
        if share < 0.05 {
            if t.elapsed() > Duration::from_secs(2) {
                say(format!(
                    "machine quiet again after {:.0} s",
                    t.elapsed().as_secs_f64()
                ));
            }
            return;
        }
        if t.elapsed() < Duration::from_millis(1500) {
            say(format!(
                "other processes use {:.0}% of the CPU; waiting up to {} s before {phase}",
                share * 100.0,
                max.as_secs()
            ));
        }
    }
    say(format!(
        "machine still busy ({:.0}% foreign CPU); measuring {phase} anyway",
        share * 100.0
    ));
}

fn run(args: &Args) -> anyhow::Result<bool> {
    let scale = Scale::of(args.mode, args.scale);
    QUIET_WAIT.store(
        args.quiet_wait.unwrap_or(match args.mode {
            Mode::Full => 120,
            Mode::Smoke => 0,
        }),
        Ordering::Relaxed,
    );
    let work = match &args.work_dir {
        Some(w) => w.clone(),
        None => std::env::temp_dir().join(format!("ocp-metrics-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let server_bin = std::fs::canonicalize(&args.server_bin)
        .with_context(|| format!("no server binary at {}", args.server_bin.display()))?;
    let script = args.duckdb_script.clone().unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/duckdb_baseline.py")
    });
    let result = run_in(args, &scale, &work, &server_bin, &script);
    if !args.keep && args.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn run_in(
    args: &Args,
    scale: &Scale,
    work: &Path,
    server_bin: &Path,
    script: &Path,
) -> anyhow::Result<bool> {
    say(format!(
        "mode {:?} x{}, work dir {}",
        args.mode,
        args.scale,
        work.display()
    ));
    let data_path = work.join("events.ndjson");
    let now = jiff::Timestamp::now();
    say("generating events");
    let data = data::generate(&data_path, scale.size, now, args.seed)?;
    say(format!(
        "{} events ({} distinct, {} history + {} recent), {} MB, in {:.1} s",
        data.lines,
        data.unique,
        data.history_lines,
        data.recent_lines,
        data.bytes >> 20,
        data.generate_seconds
    ));

    let ours = run_ours(args, scale, work, server_bin, &data_path, &data)?;
    let mut ok = ours.consistent;

    let ch = if args.no_clickhouse {
        None
    } else {
        Some(run_clickhouse(scale, work, &data_path, &data, &ours.specs)?)
    };
    let duck = if args.no_duckdb {
        None
    } else {
        wait_quiet(&[], "DuckDB");
        say("DuckDB: loading and querying");
        let d = duck::run(
            &args.python,
            script,
            work,
            &data_path,
            &ours.specs,
            GROUP,
            scale.baseline_iterations,
            scale.qps_seconds,
        )?;
        say(format!(
            "DuckDB {}: loaded {} rows in {:.1} s, {} distinct",
            d.version, d.raw_rows, d.load_seconds, d.rows
        ));
        Some(d)
    };

    // Equal answers, bucket by bucket.
    let mut checks = Vec::new();
    for (i, spec) in ours.specs.iter().enumerate() {
        let mine = &ours.answers[i];
        if queries::total(mine) == 0 {
            eprintln!(
                "  {}: ocp-metrics answered all zeros: the data does not reach this query",
                spec.name
            );
            ok = false;
        }
        if let Some(ch) = &ch {
            let mut theirs = queries::norm_rows(spec, &ch.rows_of[i])?;
            if args.inject_disagreement {
                queries::perturb(&mut theirs);
            }
            let d = queries::diff(mine, &theirs, 8);
            report_check(spec, "ClickHouse", &d, mine);
            ok &= d.is_empty();
            checks.push(json!({"query": spec.name, "system": "clickhouse", "equal": d.is_empty(), "differences": d}));
        }
        if let Some(duck) = &duck {
            let q = duck
                .queries
                .get(spec.name)
                .with_context(|| format!("DuckDB has no result for {}", spec.name))?;
            let mut theirs = queries::norm_rows(spec, &q.rows)?;
            if args.inject_disagreement {
                queries::perturb(&mut theirs);
            }
            let d = queries::diff(mine, &theirs, 8);
            report_check(spec, "DuckDB", &d, mine);
            ok &= d.is_empty();
            checks.push(json!({"query": spec.name, "system": "duckdb", "equal": d.is_empty(), "differences": d}));
        }
    }
    if let Some(ch) = &ch
        && (ch.raw_rows != data.lines || ch.rows != data.unique)
    {
        eprintln!(
            "  ClickHouse holds {} raw rows (sent {}) and {} distinct (expected {})",
            ch.raw_rows, data.lines, ch.rows, data.unique
        );
        ok = false;
    }
    if let Some(d) = &duck
        && (d.raw_rows != data.lines || d.rows != data.unique)
    {
        eprintln!(
            "  DuckDB holds {} raw rows (file {}) and {} distinct (expected {})",
            d.raw_rows, data.lines, d.rows, data.unique
        );
        ok = false;
    }

    let (rows, targets) = build_tables(&ours, ch.as_ref(), duck.as_ref(), &data);
    let machine = machine();
    let mut md = String::new();
    md.push_str(&format!(
        "Mode `{:?}` (x{}), {} events ({} distinct) of group `{GROUP}`, generated {}.\n\nMachine: {}\n\nVersions: {}; ClickHouse {}; DuckDB {}.\n\n",
        args.mode,
        args.scale,
        data.lines,
        data.unique,
        data.generated_at,
        machine,
        ours.version,
        ch.as_ref().map_or("-", |c| c.version.as_str()),
        duck.as_ref().map_or("-", |d| d.version.as_str()),
    ));
    md.push_str(&noise_line(
        &ours.noise,
        ch.as_ref().map(|c| c.noise.as_slice()),
    ));
    md.push_str(&report::table(&rows));
    md.push_str("\nTargets:\n\n");
    md.push_str(&report::targets(&targets));
    md.push_str(&format!(
        "\nAnswers equal: {}\n",
        if ok {
            "yes, every query, every baseline"
        } else {
            "NO"
        }
    ));
    println!("\n{md}");
    if let Some(p) = &args.markdown_out {
        std::fs::write(p, &md)?;
    }
    if let Some(p) = &args.json_out {
        let v = json!({
            "mode": format!("{:?}", args.mode),
            "scale": args.scale,
            "machine": machine,
            "data": data,
            "ours": ours.json,
            "clickhouse": ch.as_ref().map(|c| c.json.clone()),
            "duckdb": duck.as_ref().map(|d| json!({
                "version": d.version, "load_seconds": d.load_seconds, "dedupe_seconds": d.dedupe_seconds,
                "rows": d.rows, "db_bytes": d.db_bytes, "qps": d.qps,
                "queries": d.queries.iter().map(|(k, q)| (k.clone(), json!(q.latencies().summary()))).collect::<serde_json::Map<_, _>>(),
            })),
            "checks": checks,
            "answers_equal": ok,
        });
        std::fs::write(p, serde_json::to_vec_pretty(&v)?)?;
    }
    Ok(ok)
}

fn report_check(spec: &QuerySpec, system: &str, diffs: &[String], mine: &Norm) {
    if diffs.is_empty() {
        say(format!(
            "{:<20} equal to {system} ({} series, total {})",
            spec.name,
            mine.len(),
            queries::total(mine)
        ));
    } else {
        eprintln!("  {:<20} DIFFERS from {system}:", spec.name);
        for d in diffs {
            eprintln!("      {d}");
        }
    }
}

/// A query's latency and answer shape on one system.
#[derive(Debug, Clone, serde::Serialize)]
struct QueryTiming {
    name: &'static str,
    latency: Summary,
    series: usize,
    buckets: usize,
    bytes: usize,
}

#[derive(Debug)]
struct OursOut {
    version: String,
    specs: Vec<QuerySpec>,
    answers: Vec<Norm>,
    ingest: Vec<(Phase, IngestRun)>,
    queries: Vec<QueryTiming>,
    qps: f64,
    fresh_idle: (Summary, Summary),
    fresh_load: (Summary, Summary),
    rss_per_million: f64,
    rss_per_million_aged: f64,
    rss_per_series: f64,
    disk_per_event: f64,
    ready_crash_ms: f64,
    ready_graceful_ms: f64,
    consistent: bool,
    /// Share of all CPU time used by other processes during each timed phase.
    noise: Vec<(String, f64)>,
    json: Value,
}

fn start_perf(enabled: bool, pid: u32, out: &Path) -> Option<std::process::Child> {
    if enabled {
        procs::perf_record(pid, out, true)
    } else {
        None
    }
}

fn stop_perf(child: Option<std::process::Child>) {
    procs::perf_stop(child);
}

/// Runs `ingest` while a thread probes freshness every 100 ms until it is done.
fn with_probes<T>(
    probe: impl Fn(u64) -> anyhow::Result<(Duration, Duration)> + Sync,
    first: u64,
    fresh: &mut Freshness,
    ingest: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, u64)> {
    let stop = AtomicBool::new(false);
    let (result, probed) = std::thread::scope(|s| {
        let prober = s.spawn(|| {
            let mut f = Freshness::default();
            let mut n = first;
            let mut err = None;
            while !stop.load(Ordering::Relaxed) {
                match probe(n) {
                    Ok((ack, vis)) => {
                        f.ack.push(ack);
                        f.visible.push(vis);
                    }
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            (f, n, err)
        });
        let r = ingest();
        stop.store(true, Ordering::Relaxed);
        let probed = prober.join().expect("the probe thread panicked");
        (r, probed)
    });
    let (f, n, err) = probed;
    if let Some(e) = err {
        return Err(e.context("freshness probe"));
    }
    fresh.ack.extend(f.ack);
    fresh.visible.extend(f.visible);
    Ok((result?, n))
}

fn run_ours(
    args: &Args,
    scale: &Scale,
    work: &Path,
    bin: &Path,
    data_path: &Path,
    data: &DataStats,
) -> anyhow::Result<OursOut> {
    let dir = work.join("ocp-data");
    let _ = std::fs::remove_dir_all(&dir);
    let log = work.join("ocp-metrics.log");
    let (mut s, ready_empty) = Ours::start(bin, &dir, &log)?;
    let version = format!("{} ({})", s.version(), source_revision());
    say(format!(
        "ocp-metrics ({version}) ready in {:.0} ms at {}",
        ms(ready_empty),
        s.url
    ));
    std::thread::sleep(Duration::from_millis(300));
    let rss_empty = s.proc.rss_bytes();
    let run_id = jiff::Timestamp::now().as_millisecond() as u64;

    // Ingest, phase by phase.
    let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(data_path)?);
    let mut ingest = Vec::new();
    let mut fresh_load = Freshness::default();
    let mut probe_n = 0u64;
    let mut noise: Vec<(String, f64)> = Vec::new();
    for phase in phases(scale) {
        let batches = data::read_batches(&mut reader, phase.events, phase.batch)?;
        let target = s.ingest_target();
        wait_quiet(&[s.proc.pid()], &format!("ingest {}", phase.label));
        let meter = CpuMeter::start(&[s.proc.pid()]);
        let run = if phase.label == "D" {
            let perf = start_perf(args.perf, s.proc.pid(), &work.join("perf-ingest.data"));
            let probe_agent = http::agent();
            let (run, n) = with_probes(
                |n| s.probe(&probe_agent, n, run_id),
                probe_n,
                &mut fresh_load,
                || http::ingest(&target, &batches, phase.producers, phase.batch),
            )?;
            stop_perf(perf);
            probe_n = n;
            run
        } else {
            http::ingest(&target, &batches, phase.producers, phase.batch)?
        };
        noise.push((format!("ingest {}", phase.label), meter.foreign_share()));
        drop(batches);
        say(format!(
            "ocp-metrics ingest {} (batch {}, {} producer(s)): {} events in {:.2} s = {} ev/s; ack p50 {:.2} ms p99 {:.2} ms; {} duplicates, {} rejected",
            phase.label,
            phase.batch,
            phase.producers,
            run.events,
            run.seconds,
            report::num(run.events_per_second),
            run.latency.p50,
            run.latency.p99,
            run.duplicates,
            run.rejected
        ));
        for r in &run.first_rejections {
            eprintln!("    rejected: {r}");
        }
        ingest.push((phase, run));
    }
    let sent: u64 = ingest.iter().map(|(_, r)| r.events).sum();
    let accepted: u64 = ingest.iter().map(|(_, r)| r.accepted).sum();
    let rejected: u64 = ingest.iter().map(|(_, r)| r.rejected).sum();
    if sent != data.lines || accepted != data.unique || rejected != 0 {
        bail!(
            "ocp-metrics accepted {accepted} of {sent} events sent ({rejected} rejected); expected {} distinct of {}",
            data.unique,
            data.lines
        );
    }

    // Freshness when idle.
    let mut fresh_idle = Freshness::default();
    let agent = http::agent();
    for _ in 0..scale.probes {
        let (ack, vis) = s.probe(&agent, probe_n, run_id)?;
        probe_n += 1;
        fresh_idle.ack.push(ack);
        fresh_idle.visible.push(vis);
    }
    let rss_loaded = s.proc.rss_bytes();
    let disk_loaded = procs::dir_bytes(&dir);

    // Queries.
    let specs = queries::suite(jiff::Timestamp::now())?;
    let bodies: Vec<String> = specs
        .iter()
        .map(|q| q.body(GROUP))
        .collect::<anyhow::Result<_>>()?;
    let mut answers = Vec::new();
    let mut timings = Vec::new();
    wait_quiet(&[s.proc.pid()], "queries");
    let perf = start_perf(args.perf, s.proc.pid(), &work.join("perf-query.data"));
    let meter = CpuMeter::start(&[s.proc.pid()]);
    for (spec, body) in specs.iter().zip(&bodies) {
        let (out, _) = s.query(&agent, spec, body)?;
        let (norm, shape) = queries::norm_ours(spec, &out)?;
        let mut lat = Latencies::default();
        for _ in 0..scale.ours_iterations {
            lat.push(s.query(&agent, spec, body)?.1);
        }
        let latency = lat.summary();
        say(format!(
            "ocp-metrics {:<20} p50 {:.2} ms p99 {:.2} ms ({} series x {} buckets, {} KB)",
            spec.name,
            latency.p50,
            latency.p99,
            shape.series,
            shape.buckets,
            shape.bytes >> 10
        ));
        answers.push(norm);
        timings.push(QueryTiming {
            name: spec.name,
            latency,
            series: shape.series,
            buckets: shape.buckets,
            bytes: shape.bytes,
        });
    }
    noise.push(("query latency".into(), meter.foreign_share()));
    let agents: Vec<ureq::Agent> = (0..8).map(|_| http::agent()).collect();
    wait_quiet(&[s.proc.pid()], "queries per second");
    let meter = CpuMeter::start(&[s.proc.pid()]);
    let qps = http::throughput(8, Duration::from_secs_f64(scale.qps_seconds), |c, i| {
        let k = (c + i) % specs.len();
        s.query(&agents[c], &specs[k], &bodies[k]).map(|_| ())
    })?;
    noise.push(("queries per second".into(), meter.foreign_share()));
    stop_perf(perf);
    say(format!("ocp-metrics: {qps:.0} queries/s with 8 clients"));

    // Restart after a crash (kill -9: recovery replays the log after the last checkpoint),
    // then after SIGTERM (which writes a final checkpoint).
    let check = |s: &Ours, answers: &[Norm], when: &str| -> anyhow::Result<bool> {
        let mut same = true;
        for ((spec, body), before) in specs.iter().zip(&bodies).zip(answers) {
            let (out, _) = s.query(&agent, spec, body)?;
            let (after, _) = queries::norm_ours(spec, &out)?;
            let d = queries::diff(before, &after, 5);
            if !d.is_empty() {
                eprintln!("  ocp-metrics {} changed after {when}:", spec.name);
                for x in d {
                    eprintln!("      {x}");
                }
                same = false;
            }
        }
        Ok(same)
    };
    wait_quiet(&[s.proc.pid()], "restart after kill -9");
    s.proc.kill9();
    let perf_restart = work.join("perf-restart-kill9.data");
    let ready_crash = s.restart(args.perf.then_some(perf_restart.as_path()))?;
    let mut consistent = check(&s, &answers, "kill -9 and restart")?;
    say(format!(
        "ocp-metrics restart after kill -9: ready in {:.0} ms",
        ms(ready_crash)
    ));
    wait_quiet(&[s.proc.pid()], "restart after SIGTERM");
    let shutdown = s.proc.terminate(Duration::from_secs(600))?;
    let disk_after_shutdown = procs::dir_bytes(&dir);
    let perf_restart = work.join("perf-restart-sigterm.data");
    let ready_graceful = s.restart(args.perf.then_some(perf_restart.as_path()))?;
    consistent &= check(&s, &answers, "SIGTERM and restart")?;
    std::thread::sleep(Duration::from_millis(500));
    let rss_restarted = s.proc.rss_bytes();
    say(format!(
        "ocp-metrics SIGTERM took {:.0} ms; restart ready in {:.0} ms; RSS {} MB",
        ms(shutdown),
        ms(ready_graceful),
        rss_restarted >> 20
    ));

    // Memory of history alone: restart with the clock 50 hours ahead, so that the dedupe set
    // (ids that arrived within 49 hours) has expired and the real-time slots are evicted; one
    // event makes the next SIGTERM write a checkpoint of that state, and a second restart loads
    // it into a fresh process.
    s.proc.terminate(Duration::from_secs(600))?;
    let aged = jiff::Timestamp::now() + SignedDuration::from_hours(50);
    s.restart_with(&["--clock-start".to_string(), aged.to_string()])?;
    let one = Batch {
        body: format!(
            "{{\"id\":\"aged-marker\",\"type\":\"session_start\",\"time\":\"{}\",\"group\":\"{}\",\"session_id\":\"aged\",\"channel\":\"omIVR\",\"region\":\"us1\"}}\n",
            data::rfc3339_ms(aged.as_millisecond()),
            ours::PROBE_GROUP
        )
        .into_bytes(),
        events: 1,
    };
    http::ingest(&s.ingest_target(), &[one], 1, 1)?;
    s.proc.terminate(Duration::from_secs(600))?;
    let aged = aged + SignedDuration::from_mins(1);
    let real_at_start = jiff::Timestamp::now();
    s.restart_with(&["--clock-start".to_string(), aged.to_string()])?;
    std::thread::sleep(Duration::from_millis(500));
    let rss_aged = s.proc.rss_bytes();
    say(format!(
        "ocp-metrics restarted 50 h later (dedupe expired, RT evicted): RSS {} MB",
        rss_aged >> 20
    ));

    // Memory of active series: K new (miniApp, locale) series in a group of their own, each
    // with one invocation in each of the last twelve 5-minute slots (of the server's clock).
    let k = scale.series_test;
    let rss_before = s.proc.rss_bytes();
    let server_now = aged + jiff::Timestamp::now().duration_since(real_at_start);
    let series_batches = series_events(k, server_now.as_millisecond());
    let series_run = http::ingest(&s.ingest_target(), &series_batches, 8, 1000)?;
    if series_run.accepted != series_run.events {
        bail!(
            "the series test had {} of {} events accepted",
            series_run.accepted,
            series_run.events
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss_after = s.proc.rss_bytes();
    let rss_per_series_live = rss_after.saturating_sub(rss_before) as f64 / k as f64;
    // The growth of a live process includes request buffers the allocator keeps; a fresh
    // process loaded from the checkpoint holds only the state.
    s.proc.terminate(Duration::from_secs(600))?;
    let server_now = aged + jiff::Timestamp::now().duration_since(real_at_start);
    s.restart_with(&["--clock-start".to_string(), server_now.to_string()])?;
    std::thread::sleep(Duration::from_millis(500));
    let rss_series = s.proc.rss_bytes();
    let rss_per_series = rss_series.saturating_sub(rss_aged) as f64 / k as f64;
    say(format!(
        "ocp-metrics: {k} extra active series ({} events): {:.0} B/series after a restart ({:.0} B/series of live growth)",
        series_run.events, rss_per_series, rss_per_series_live
    ));
    s.proc.terminate(Duration::from_secs(600))?;

    let millions = data.unique as f64 / 1e6;
    let rss_per_million = rss_restarted.saturating_sub(rss_empty) as f64 / millions;
    let rss_per_million_aged = rss_aged.saturating_sub(rss_empty) as f64 / millions;
    let disk_per_event = disk_after_shutdown as f64 / data.unique as f64;
    let f = |l: &Freshness| (l.ack.summary(), l.visible.summary());
    let json = json!({
        "version": version,
        "ingest": ingest.iter().map(|(p, r)| json!({"phase": p.label, "run": r})).collect::<Vec<_>>(),
        "freshness_idle": {"ack": fresh_idle.ack.summary(), "visible_after_200": fresh_idle.visible.summary()},
        "freshness_under_load": {"ack": fresh_load.ack.summary(), "visible_after_200": fresh_load.visible.summary()},
        "queries": timings,
        "qps_8_clients": qps,
        "footprint": {
            "rss_empty_bytes": rss_empty,
            "rss_loaded_bytes": rss_loaded,
            "rss_restarted_bytes": rss_restarted,
            "rss_bytes_per_million_events": rss_per_million,
            "rss_aged_bytes": rss_aged,
            "rss_bytes_per_million_events_aged": rss_per_million_aged,
            "rss_bytes_per_active_series": rss_per_series,
            "rss_bytes_per_active_series_live_growth": rss_per_series_live,
            "series_test": k,
            "disk_loaded_bytes": disk_loaded,
            "disk_after_shutdown_bytes": disk_after_shutdown,
            "disk_bytes_per_event": disk_per_event,
            "ready_empty_ms": ms(ready_empty),
            "ready_after_kill9_ms": ms(ready_crash),
            "shutdown_ms": ms(shutdown),
            "ready_after_sigterm_ms": ms(ready_graceful),
        },
        "consistent_across_restarts": consistent,
        "foreign_cpu_share": noise.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "specs": specs,
    });
    Ok(OursOut {
        version,
        specs,
        answers,
        ingest,
        queries: timings,
        qps,
        fresh_idle: f(&fresh_idle),
        fresh_load: f(&fresh_load),
        rss_per_million,
        rss_per_million_aged,
        rss_per_series,
        disk_per_event,
        ready_crash_ms: ms(ready_crash),
        ready_graceful_ms: ms(ready_graceful),
        consistent,
        noise,
        json,
    })
}

/// Events of `k` distinct series in their own group, twelve 5-minute slots each, one session
/// per series.
fn series_events(k: usize, now_ms: i64) -> Vec<Batch> {
    let mut lines = String::new();
    let mut batches = Vec::new();
    let mut n = 0;
    for i in 0..k {
        for j in 1..=12i64 {
            let t = now_ms - j * 300_000;
            lines.push_str(&format!(
                "{{\"id\":\"series-{i}-{j}\",\"type\":\"miniapp_end\",\"time\":\"{}\",\"started_at\":\"{}\",\"group\":\"bench-series\",\"session_id\":\"series-session-{i}\",\"channel\":\"omIVR\",\"region\":\"us1\",\"miniapp_name\":\"SeriesApp{:05}\",\"miniapp_id\":\"series-{:05}\",\"miniapp_type\":\"Intent\",\"locale\":\"{}\",\"result\":\"success\"}}\n",
                data::rfc3339_ms(t),
                data::rfc3339_ms(t - 1000),
                i / data::TAIL_LOCALES.len(),
                i / data::TAIL_LOCALES.len(),
                data::TAIL_LOCALES[i % data::TAIL_LOCALES.len()],
            ));
            n += 1;
            if n == 1000 {
                batches.push(Batch {
                    body: std::mem::take(&mut lines).into_bytes(),
                    events: n,
                });
                n = 0;
            }
        }
    }
    if n > 0 {
        batches.push(Batch {
            body: lines.into_bytes(),
            events: n,
        });
    }
    batches
}

#[derive(Debug)]
struct ChOut {
    version: String,
    ingest: Vec<(Phase, IngestRun)>,
    raw_rows: u64,
    rows: u64,
    /// Rows of every query, in suite order.
    rows_of: Vec<Vec<Vec<String>>>,
    queries: Vec<QueryTiming>,
    qps: f64,
    fresh_idle: (Summary, Summary),
    rss_per_million: f64,
    disk_per_event: f64,
    ready_ms: f64,
    noise: Vec<(String, f64)>,
    json: Value,
}

fn run_clickhouse(
    scale: &Scale,
    work: &Path,
    data_path: &Path,
    data: &DataStats,
    specs: &[QuerySpec],
) -> anyhow::Result<ChOut> {
    let dir = work.join("clickhouse");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let (mut ch, ready_empty) = clickhouse::ClickHouse::start(&dir)?;
    let version = ch.exec("SELECT version()")?.trim().to_string();
    say(format!(
        "ClickHouse {version} ready in {:.0} ms at {}",
        ms(ready_empty),
        ch.url
    ));
    ch.create_tables()?;
    std::thread::sleep(Duration::from_millis(300));
    let rss_empty = ch.proc.rss_bytes();

    let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(data_path)?);
    let mut ingest = Vec::new();
    let mut noise: Vec<(String, f64)> = Vec::new();
    for phase in phases(scale) {
        // ClickHouse gets every slice in 1,000-row batches, with the phase's producers.
        let batches = data::read_batches(&mut reader, phase.events, 1000)?;
        wait_quiet(
            &[ch.proc.pid()],
            &format!("ClickHouse insert {}", phase.label),
        );
        let meter = CpuMeter::start(&[ch.proc.pid()]);
        let run = http::ingest(&ch.ingest_target(), &batches, phase.producers, 1000)?;
        noise.push((format!("ingest {}", phase.label), meter.foreign_share()));
        drop(batches);
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
        ingest.push((phase, run));
    }
    // Freshness: a row inserted, then counted.
    let agent = http::agent();
    let mut fresh = Freshness::default();
    for n in 0..scale.probes {
        let line = format!(
            "{{\"id\":\"probe-{n}\",\"type\":\"miniapp_end\",\"time\":\"{}\",\"group\":\"{}\",\"session_id\":\"p\",\"channel\":\"omIVR\",\"region\":\"us1\"}}\n",
            data::rfc3339_ms(jiff::Timestamp::now().as_millisecond()),
            ours::PROBE_GROUP
        );
        let t0 = Instant::now();
        let target = ch.ingest_target();
        let (status, body) = http::send(&agent, "POST", &target.url, &[], Some(line.as_bytes()))?;
        if status != 200 {
            bail!(
                "ClickHouse probe insert: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
        let acked = Instant::now();
        loop {
            let c: u64 = ch
                .exec(&format!(
                    "SELECT count() FROM raw WHERE `group` = '{}' AND id = 'probe-{n}'",
                    ours::PROBE_GROUP
                ))?
                .trim()
                .parse()?;
            if c >= 1 {
                break;
            }
            if acked.elapsed() > Duration::from_secs(30) {
                bail!("ClickHouse probe not visible after 30 s");
            }
        }
        fresh.ack.push(acked - t0);
        fresh.visible.push(acked.elapsed());
    }
    let raw_rows: u64 = ch
        .exec(&format!(
            "SELECT count() FROM raw WHERE `group` = '{GROUP}'"
        ))?
        .trim()
        .parse()?;
    ch.wait_for_merges(Duration::from_secs(300))?;
    let raw_bytes = ch.table_bytes("raw")?;
    let dedupe_seconds = ch.dedupe()?;
    let rows: u64 = ch
        .exec(&format!("SELECT count() FROM ev WHERE `group` = '{GROUP}'"))?
        .trim()
        .parse()?;
    ch.wait_for_merges(Duration::from_secs(300))?;
    let ev_bytes = ch.table_bytes("ev")?;
    let rss_loaded = ch.proc.rss_bytes();
    say(format!(
        "ClickHouse: {raw_rows} raw rows ({} MB on disk), deduplicated to {rows} in {dedupe_seconds:.1} s",
        raw_bytes >> 20
    ));

    let mut rows_of = Vec::new();
    let mut timings = Vec::new();
    let sqls: Vec<String> = specs
        .iter()
        .map(|q| q.sql(queries::Dialect::ClickHouse, "ev", GROUP))
        .collect();
    wait_quiet(&[ch.proc.pid()], "ClickHouse queries");
    let meter = CpuMeter::start(&[ch.proc.pid()]);
    for (spec, sql) in specs.iter().zip(&sqls) {
        let r = ch.rows(sql)?;
        let mut lat = Latencies::default();
        for _ in 0..scale.baseline_iterations {
            lat.push(ch.time(&agent, sql)?);
        }
        let latency = lat.summary();
        say(format!(
            "ClickHouse  {:<20} p50 {:.1} ms p99 {:.1} ms ({} rows)",
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
    noise.push(("query latency".into(), meter.foreign_share()));
    let agents: Vec<ureq::Agent> = (0..8).map(|_| http::agent()).collect();
    wait_quiet(&[ch.proc.pid()], "ClickHouse queries per second");
    let meter = CpuMeter::start(&[ch.proc.pid()]);
    let qps = http::throughput(8, Duration::from_secs_f64(scale.qps_seconds), |c, i| {
        ch.time(&agents[c], &sqls[(c + i) % sqls.len()]).map(|_| ())
    })?;
    noise.push(("queries per second".into(), meter.foreign_share()));
    say(format!("ClickHouse: {qps:.1} queries/s with 8 clients"));
    let ready = ch.restart()?;
    let after = ch.rows(&sqls[2])?;
    if after != rows_of[2] {
        bail!("ClickHouse answered differently after its restart");
    }
    say(format!("ClickHouse restart: ready in {:.0} ms", ms(ready)));
    ch.proc.kill9();

    let millions = data.unique as f64 / 1e6;
    let rss_per_million = rss_loaded.saturating_sub(rss_empty) as f64 / millions;
    let disk_per_event = raw_bytes as f64 / data.lines as f64;
    let json = json!({
        "version": version,
        "ingest": ingest.iter().map(|(p, r)| json!({"phase": p.label, "run": r})).collect::<Vec<_>>(),
        "freshness_idle": {"ack": fresh.ack.summary(), "visible_after_200": fresh.visible.summary()},
        "raw_rows": raw_rows,
        "rows": rows,
        "raw_bytes": raw_bytes,
        "dedup_bytes": ev_bytes,
        "dedupe_seconds": dedupe_seconds,
        "queries": timings,
        "qps_8_clients": qps,
        "rss_empty_bytes": rss_empty,
        "rss_loaded_bytes": rss_loaded,
        "ready_after_restart_ms": ms(ready),
        "foreign_cpu_share": noise.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
    });
    Ok(ChOut {
        version,
        ingest,
        raw_rows,
        rows,
        rows_of,
        queries: timings,
        qps,
        fresh_idle: (fresh.ack.summary(), fresh.visible.summary()),
        rss_per_million,
        disk_per_event,
        ready_ms: ms(ready),
        noise,
        json,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn build_tables(
    ours: &OursOut,
    ch: Option<&ChOut>,
    duck: Option<&duck::DuckResult>,
    data: &DataStats,
) -> (Vec<Row>, Vec<Target>) {
    let mut rows = Vec::new();
    let ch_phase = |label: &str| {
        ch.and_then(|c| c.ingest.iter().find(|(p, _)| p.label == label))
            .map(|(_, r)| r)
    };
    for (p, r) in &ours.ingest {
        let theirs = ch_phase(p.label).filter(|_| p.batch == 1000);
        rows.push(
            Row::new(
                format!(
                    "ingest {}: batch {}, {} producer(s), {} events",
                    p.label, p.batch, p.producers, r.events
                ),
                "events/s",
                true,
            )
            .ours(r.events_per_second)
            .ch(theirs.map(|t| t.events_per_second)),
        );
        for (which, pick) in [("p50", 0), ("p99", 1)] {
            let v = |s: &Summary| if pick == 0 { s.p50 } else { s.p99 };
            rows.push(
                Row::new(
                    format!("ingest {} ack latency {which}", p.label),
                    "ms",
                    false,
                )
                .ours(v(&r.latency))
                .ch(theirs.map(|t| v(&t.latency))),
            );
        }
    }
    if let Some(d) = duck {
        rows.push(
            Row::new(
                "bulk load of the whole file (DuckDB read_json; not per-request durable)",
                "events/s",
                true,
            )
            .duck(Some(data.lines as f64 / d.load_seconds)),
        );
    }
    rows.push(
        Row::new(
            "freshness: 200 to visible in a query, idle, p50",
            "ms",
            false,
        )
        .ours(ours.fresh_idle.1.p50)
        .ch(ch.map(|c| c.fresh_idle.1.p50)),
    );
    rows.push(
        Row::new(
            "freshness: 200 to visible in a query, idle, p99",
            "ms",
            false,
        )
        .ours(ours.fresh_idle.1.p99)
        .ch(ch.map(|c| c.fresh_idle.1.p99)),
    );
    rows.push(
        Row::new(
            "freshness: 200 to visible, during ingest D, p50",
            "ms",
            false,
        )
        .ours(ours.fresh_load.1.p50),
    );
    rows.push(
        Row::new(
            "freshness: 200 to visible, during ingest D, p99",
            "ms",
            false,
        )
        .ours(ours.fresh_load.1.p99),
    );
    for (i, q) in ours.queries.iter().enumerate() {
        let spec = &ours.specs[i];
        let chq = ch.map(|c| &c.queries[i]);
        let dq = duck
            .and_then(|d| d.queries.get(q.name))
            .map(|x| x.latencies().summary());
        for (which, pick) in [("p50", 0), ("p99", 1)] {
            let v = |s: &Summary| if pick == 0 { s.p50 } else { s.p99 };
            rows.push(
                Row::new(
                    format!(
                        "query {} ({} series x {} buckets) {which}",
                        spec.name, q.series, q.buckets
                    ),
                    "ms",
                    false,
                )
                .ours(v(&q.latency))
                .ch(chq.map(|c| v(&c.latency)))
                .duck(dq.as_ref().map(v)),
            );
        }
    }
    rows.push(
        Row::new(
            "queries per second, 8 clients, the 7 queries in turn",
            "q/s",
            true,
        )
        .ours(ours.qps)
        .ch(ch.map(|c| c.qps))
        .duck(duck.map(|d| d.qps)),
    );
    rows.push(
        Row::new(
            "resident memory per million events, right after loading (all ids in the dedupe horizon, RT live)",
            "MB",
            false,
        )
        .ours(ours.rss_per_million / 1e6)
        .ch(ch.map(|c| c.rss_per_million / 1e6)),
    );
    rows.push(
        Row::new(
            "resident memory per million events of history (50 h later: dedupe expired, RT evicted)",
            "MB",
            false,
        )
        .ours(ours.rss_per_million_aged / 1e6),
    );
    rows.push(
        Row::new(
            "resident memory per active series (12 RT slots each, after a restart)",
            "bytes",
            false,
        )
        .ours(ours.rss_per_series),
    );
    rows.push(
        Row::new("disk per event", "bytes", false)
            .ours(ours.disk_per_event)
            .ch(ch.map(|c| c.disk_per_event))
            .duck(duck.map(|d| d.db_bytes as f64 / d.rows as f64)),
    );
    rows.push(
        Row::new(
            format!("restart to ready after SIGTERM, {} events", data.unique),
            "ms",
            false,
        )
        .ours(ours.ready_graceful_ms)
        .ch(ch.map(|c| c.ready_ms)),
    );
    rows.push(
        Row::new(
            format!("restart to ready after kill -9, {} events", data.unique),
            "ms",
            false,
        )
        .ours(ours.ready_crash_ms),
    );

    // Targets.
    let d = ours
        .ingest
        .iter()
        .find(|(p, _)| p.label == "D")
        .map(|(_, r)| r);
    let c = ours
        .ingest
        .iter()
        .find(|(p, _)| p.label == "C")
        .map(|(_, r)| r);
    let q = |name: &str| ours.queries.iter().position(|q| q.name == name);
    let mut targets = Vec::new();
    if let Some(d) = d {
        targets.push(Target {
            what: "ingest >= 300,000 events/s durably with 8 producers (batch 1,000)".into(),
            measured: format!("{} events/s", report::num(d.events_per_second)),
            met: Some(d.events_per_second >= 300_000.0),
        });
    }
    if let Some(i) = q("rt_5min") {
        let p99 = ours.queries[i].latency.p99;
        targets.push(Target {
            what: "RT 48 h five_min query p99 < 5 ms".into(),
            measured: format!("{p99:.2} ms"),
            met: Some(p99 < 5.0),
        });
    }
    if let Some(i) = q("batch_day_drill") {
        let t = &ours.queries[i];
        targets.push(Target {
            what: "batch 720-day day query over 1,000 series p99 < 50 ms".into(),
            measured: format!("{:.2} ms over {} series", t.latency.p99, t.series),
            met: Some(t.latency.p99 < 50.0 && t.series >= 1000),
        });
    }
    if let Some(ch) = ch {
        let worst = ours
            .queries
            .iter()
            .zip(&ch.queries)
            .map(|(o, t)| (o.name, t.latency.p50 / o.latency.p50.max(1e-9)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((name, speedup)) = worst {
            targets.push(Target {
                what: "every query >= 10x faster than ClickHouse (p50)".into(),
                measured: format!("slowest speed-up {speedup:.1}x ({name})"),
                met: Some(speedup >= 10.0),
            });
        }
        for (label, mine) in [("C", c), ("D", d)] {
            if let (Some(m), Some(t)) = (mine, ch_phase(label)) {
                targets.push(Target {
                    what: format!(
                        "ingest >= ClickHouse insert of the same rows (phase {label}, batch 1,000, {} producer(s))",
                        m.producers
                    ),
                    measured: format!(
                        "{} vs {} events/s",
                        report::num(m.events_per_second),
                        report::num(t.events_per_second)
                    ),
                    met: Some(m.events_per_second >= t.events_per_second),
                });
            }
        }
    } else {
        targets.push(Target {
            what: "comparisons with ClickHouse".into(),
            measured: "not run (--no-clickhouse)".into(),
            met: None,
        });
    }
    (rows, targets)
}

/// The machine, in one line.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb >> 20);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("PRETTY_NAME=")).map(|l| {
                l.trim_start_matches("PRETTY_NAME=")
                    .trim_matches('"')
                    .to_string()
            })
        })
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem} GiB RAM, {os}, Linux {kernel}")
}

/// The commit of the source tree the run was built from, and whether it had local changes.
fn source_revision() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(rev) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("commit {rev} with uncommitted changes")
            } else {
                format!("commit {rev}")
            }
        }
        None => "commit unknown".into(),
    }
}

/// Says how much CPU other processes took during the timed phases, and warns when it is enough
/// to skew the numbers.
fn noise_line(ours: &[(String, f64)], ch: Option<&[(String, f64)]>) -> String {
    let worst = |v: &[(String, f64)]| {
        v.iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(k, x)| (k.clone(), *x))
            .unwrap_or_default()
    };
    let (ok, ov) = worst(ours);
    let mut line = format!(
        "CPU used by other processes during timed phases: ocp-metrics at most {:.1}% ({ok})",
        ov * 100.0
    );
    let mut max = ov;
    if let Some(ch) = ch {
        let (ck, cv) = worst(ch);
        line.push_str(&format!(", ClickHouse at most {:.1}% ({ck})", cv * 100.0));
        max = max.max(cv);
    }
    line.push('.');
    if max > 0.05 {
        line.push_str(" **WARNING: the machine was not quiet; these numbers are skewed.**");
    }
    line.push_str("\n\n");
    line
}
