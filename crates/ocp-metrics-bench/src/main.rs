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
//!
//! `ocp-metrics-bench cluster` is a separate run: cluster mode on NATS JetStream against the
//! embedded mode (see [`cluster`]).
//!
//! This file holds the command line, the scale and ingest phases of each mode, and the run in
//! order. Each system's driver lives with it ([`ours`], [`clickhouse`], [`duck`]), the verdict
//! on answers in [`compare`], and the report in [`report`].

mod clickhouse;
mod cluster;
mod compare;
mod data;
mod duck;
mod http;
mod ours;
mod procs;
mod queries;
mod report;
mod stats;
mod warehouse;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use data::{Batch, DataSize, DataStats, GROUP};
use duck::DuckResult;
use http::IngestRun;
use queries::QuerySpec;
use report::Results;
use serde_json::{Value, json};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    /// Without a subcommand: the side-by-side benchmark of `--mode`.
    #[command(subcommand)]
    command: Option<Command>,
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
    /// Measure every system this many times on the same data (one after the other); the
    /// report shows each cell's median and range, and every answer of every run is checked.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// MiniApp names of the generated long tail (default 50): the drilldowns by name x locale
    /// have about 20 times as many series (bench/scaling.sh varies it).
    #[arg(long)]
    tail_names: Option<usize>,
    /// Skip the footprint phases of ocp-metrics after the restarts (the 50-hour-later restart
    /// and the active-series test), for shorter runs such as bench/scaling.sh.
    #[arg(long)]
    no_footprint: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Cluster mode (1 node on NATS R1, 3 nodes on a 3-server NATS R3) against 1 embedded
    /// node, on the same generated events; and a wiped node's catch-up.
    Cluster(cluster::ClusterArgs),
    /// A cluster node's memory with the batch history in memory and in ClickHouse (1, 10, 100
    /// tenants of 720 days), and 720-day batch queries from each.
    Warehouse(warehouse::WarehouseArgs),
    /// Prints one benchmark query as it is sent now, `PATH<TAB>BODY` on one line, for scripts
    /// that time it alone (`bench/query_ttfb.sh`).
    Query {
        /// The query's name: rt_5min, batch_day_drill, batch_week, ...
        name: String,
    },
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
    /// Whether ocp-metrics' memory is also measured 50 hours later and per active series.
    footprint: bool,
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
                    tail_names: data::TAIL_NAMES,
                },
                slices: [300_000, 1_200_000, 1_500_000],
                ours_iterations: 200,
                baseline_iterations: 50,
                qps_seconds: 10.0,
                series_test: 20_000,
                probes: 100,
                footprint: true,
            },
            Mode::Smoke => Scale {
                size: DataSize {
                    history_sim: 60_000,
                    history_tail: 20_000,
                    recent_sim: 40_000,
                    recent_tail: 20_000,
                    tail_names: data::TAIL_NAMES,
                },
                slices: [10_000, 20_000, 30_000],
                ours_iterations: 10,
                baseline_iterations: 3,
                qps_seconds: 2.0,
                series_test: 1_000,
                probes: 10,
                footprint: true,
            },
        };
        let f = |n: u64| ((n as f64) * factor).round() as u64;
        Scale {
            size: DataSize {
                history_sim: f(base.size.history_sim),
                history_tail: f(base.size.history_tail),
                recent_sim: f(base.size.recent_sim),
                recent_tail: f(base.size.recent_tail),
                tail_names: base.size.tail_names,
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

/// The four ingest phases of a run, in order.
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

/// Reads the data file slice by slice, one slice per phase in batches of `batch_of(phase)`
/// events, and has `ingest` send each; returns every phase with its run.
fn ingest_phases(
    scale: &Scale,
    data_path: &Path,
    batch_of: impl Fn(&Phase) -> usize,
    mut ingest: impl FnMut(&Phase, &[Batch]) -> anyhow::Result<IngestRun>,
) -> anyhow::Result<Vec<(Phase, IngestRun)>> {
    let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(data_path)?);
    let mut runs = Vec::new();
    for phase in phases(scale) {
        let batches = data::read_batches(&mut reader, phase.events, batch_of(&phase))?;
        let run = ingest(&phase, &batches)?;
        runs.push((phase, run));
    }
    Ok(runs)
}

/// The ingest phases and their runs, for the JSON results.
fn phases_json(runs: &[(Phase, IngestRun)]) -> Value {
    runs.iter()
        .map(|(p, r)| json!({"phase": p.label, "run": r}))
        .collect()
}

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = match &args.command {
        Some(Command::Cluster(c)) => cluster::main(c),
        Some(Command::Warehouse(w)) => warehouse::main(w),
        Some(Command::Query { name }) => print_query(name),
        None => run(&args),
    };
    match outcome {
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

/// The `query` command: one query of the suite, as the benchmark would send it now.
fn print_query(name: &str) -> anyhow::Result<bool> {
    let suite = queries::suite(jiff::Timestamp::now())?;
    let Some(spec) = suite.iter().find(|q| q.name == name) else {
        let names: Vec<&str> = suite.iter().map(|q| q.name).collect();
        anyhow::bail!("no query `{name}`; the suite has {}", names.join(", "));
    };
    println!("{}\t{}", spec.path(), spec.body(GROUP)?);
    Ok(true)
}

/// Prints a progress line with the time of day.
fn say(msg: impl AsRef<str>) {
    eprintln!("[bench {}] {}", clock(), msg.as_ref());
}

fn clock() -> String {
    jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .strftime("%H:%M:%S")
        .to_string()
}

/// The whole run in a work directory of its own; true if every answer agreed.
fn run(args: &Args) -> anyhow::Result<bool> {
    let mut scale = Scale::of(args.mode, args.scale);
    if let Some(n) = args.tail_names {
        scale.size.tail_names = n;
    }
    scale.footprint = !args.no_footprint;
    procs::set_quiet_wait(args.quiet_wait.unwrap_or(match args.mode {
        Mode::Full => 120,
        Mode::Smoke => 0,
    }));
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

/// Generates the data, measures each system in turn, compares the answers and writes the
/// report; true if every answer agreed.
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
    let data = generate(args, scale, &data_path)?;
    let runs = args.runs.max(1);
    let mut measured = Vec::new();
    for run in 0..runs {
        if runs > 1 {
            say(format!("run {} of {runs}", run + 1));
        }
        // Profiles are recorded in the first run only.
        let perf = args.perf && run == 0;
        let ours = ours::run_ours(perf, scale, work, server_bin, &data_path, &data)?;
        let ch = if args.no_clickhouse {
            None
        } else {
            Some(clickhouse::run_clickhouse(
                scale,
                work,
                &data_path,
                &data,
                &ours.specs,
            )?)
        };
        let duck = if args.no_duckdb {
            None
        } else {
            Some(run_duckdb(
                args,
                scale,
                work,
                script,
                &data_path,
                &ours.specs,
            )?)
        };
        measured.push((ours, ch, duck));
    }
    let results: Vec<Results> = measured
        .iter()
        .map(|(ours, ch, duck)| Results {
            ours,
            ch: ch.as_ref(),
            duck: duck.as_ref(),
            data: &data,
        })
        .collect();
    let mut ok = true;
    let mut checks = Vec::new();
    for (run, r) in results.iter().enumerate() {
        let (equal, run_checks) = compare::answers(*r, args.inject_disagreement)?;
        ok &= equal && r.ours.consistent;
        if let Some(ch) = r.ch {
            ok &= compare::holds_all_rows("ClickHouse", "sent", ch.raw_rows, ch.rows, &data);
        }
        if let Some(d) = r.duck {
            ok &= compare::holds_all_rows("DuckDB", "file", d.raw_rows, d.rows, &data);
        }
        checks.push(json!({"run": run + 1, "checks": run_checks}));
    }
    write_report(args, &results, &checks, ok)?;
    Ok(ok)
}

/// Generates the data set into `path`.
fn generate(args: &Args, scale: &Scale, path: &Path) -> anyhow::Result<DataStats> {
    say("generating events");
    let data = data::generate(path, scale.size, jiff::Timestamp::now(), args.seed)?;
    say(format!(
        "{} events ({} distinct, {} history + {} recent), {} MB, in {:.1} s",
        data.lines,
        data.unique,
        data.history_lines,
        data.recent_lines,
        data.bytes >> 20,
        data.generate_seconds
    ));
    Ok(data)
}

/// Loads the data into DuckDB and asks it the `specs`.
fn run_duckdb(
    args: &Args,
    scale: &Scale,
    work: &Path,
    script: &Path,
    data_path: &Path,
    specs: &[QuerySpec],
) -> anyhow::Result<DuckResult> {
    procs::wait_quiet(&[], "DuckDB");
    say("DuckDB: loading and querying");
    let d = duck::run(
        &args.python,
        script,
        work,
        data_path,
        specs,
        GROUP,
        scale.baseline_iterations,
        scale.qps_seconds,
    )?;
    say(format!(
        "DuckDB {}: loaded {} rows in {:.1} s, {} distinct",
        d.version, d.raw_rows, d.load_seconds, d.rows
    ));
    Ok(d)
}

/// Prints the report, and writes it (and the JSON results) where asked.
fn write_report(args: &Args, runs: &[Results], checks: &[Value], ok: bool) -> anyhow::Result<()> {
    let machine = report::machine();
    let r = runs[0];
    let heading = format!(
        "Mode `{:?}` (x{}), {} run(s), {} events ({} distinct) of group `{GROUP}`, generated {}.\n\nMachine: {}\n\nVersions: {}; ClickHouse {}; DuckDB {}.\n\n",
        args.mode,
        args.scale,
        runs.len(),
        r.data.lines,
        r.data.unique,
        r.data.generated_at,
        machine,
        r.ours.version,
        r.ch.map_or("-", |c| c.version.as_str()),
        r.duck.map_or("-", |d| d.version.as_str()),
    );
    let md = report::markdown(&heading, runs, ok);
    println!("\n{md}");
    if let Some(p) = &args.markdown_out {
        std::fs::write(p, &md)?;
    }
    if let Some(p) = &args.json_out {
        let v = json!({
            "mode": format!("{:?}", args.mode),
            "scale": args.scale,
            "machine": machine,
            "data": r.data,
            "runs": runs.iter().map(|r| json!({
                "ours": r.ours.json,
                "clickhouse": r.ch.map(|c| c.json.clone()),
                "duckdb": r.duck.map(DuckResult::json),
            })).collect::<Vec<_>>(),
            "checks": checks,
            "answers_equal": ok,
        });
        std::fs::write(p, serde_json::to_vec_pretty(&v)?)?;
    }
    Ok(())
}
