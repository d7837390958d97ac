//! The printed report: a Markdown table of measurements with ratios (ours / theirs), the
//! targets the product is held to, and the machine and source they were measured on.

use crate::clickhouse::ChOut;
use crate::data::DataStats;
use crate::duck::DuckResult;
use crate::http::IngestRun;
use crate::ours::OursOut;
use crate::procs::{self, FOREIGN_SHARE_QUIET, Noise};
use crate::stats::Summary;
use std::fmt::Write;

/// A query's latency and answer shape on one system.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueryTiming {
    pub name: &'static str,
    pub latency: Summary,
    pub series: usize,
    pub buckets: usize,
    pub bytes: usize,
}

/// The measurements of one run, as the report reads them.
#[derive(Debug, Clone, Copy)]
pub struct Results<'a> {
    pub ours: &'a OursOut,
    pub ch: Option<&'a ChOut>,
    pub duck: Option<&'a DuckResult>,
    pub data: &'a DataStats,
}

/// The report in Markdown: `heading` (what ran, on what), the CPU noise, the ratio table, the
/// targets and the verdict on the answers.
pub fn markdown(heading: &str, r: Results, answers_equal: bool) -> String {
    let mut md = heading.to_string();
    md.push_str(&noise_line(&r.ours.noise, r.ch.map(|c| &c.noise)));
    md.push_str(&table(&rows(r)));
    md.push_str("\nTargets:\n\n");
    md.push_str(&targets(&target_rows(r)));
    md.push_str(&format!(
        "\nAnswers equal: {}\n",
        if answers_equal {
            "yes, every query, every baseline"
        } else {
            "NO"
        }
    ));
    md
}

/// One row of the ratio table. `None` is a measurement that a system does not have.
#[derive(Debug, Clone)]
pub struct Row {
    pub measure: String,
    pub unit: &'static str,
    pub ours: Option<f64>,
    pub clickhouse: Option<f64>,
    pub duckdb: Option<f64>,
    /// Whether a larger value is better (throughput) or worse (latency, size).
    pub higher_is_better: bool,
}

impl Row {
    pub fn new(measure: impl Into<String>, unit: &'static str, higher_is_better: bool) -> Row {
        Row {
            measure: measure.into(),
            unit,
            ours: None,
            clickhouse: None,
            duckdb: None,
            higher_is_better,
        }
    }

    pub fn ours(mut self, v: f64) -> Row {
        self.ours = Some(v);
        self
    }

    pub fn ch(mut self, v: Option<f64>) -> Row {
        self.clickhouse = v;
        self
    }

    pub fn duck(mut self, v: Option<f64>) -> Row {
        self.duckdb = v;
        self
    }
}

/// A number with three significant digits and thousands separators.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a >= 1000.0 {
        let s = format!("{:.0}", v);
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a == 0.0 {
        "0".into()
    } else {
        format!("{v:.3}")
    }
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), num)
}

fn ratio(ours: Option<f64>, theirs: Option<f64>) -> String {
    match (ours, theirs) {
        (Some(a), Some(b)) if b != 0.0 => num(a / b),
        _ => "-".into(),
    }
}

/// The ratio table as Markdown.
fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| measure | unit | better | ocp-metrics | ClickHouse | DuckDB | ours / ClickHouse | ours / DuckDB |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.measure,
            r.unit,
            if r.higher_is_better {
                "higher"
            } else {
                "lower"
            },
            cell(r.ours),
            cell(r.clickhouse),
            cell(r.duckdb),
            ratio(r.ours, r.clickhouse),
            ratio(r.ours, r.duckdb),
        );
    }
    out
}

/// One target and whether the run met it.
#[derive(Debug, Clone)]
pub struct Target {
    pub what: String,
    pub measured: String,
    pub met: Option<bool>,
}

fn targets(ts: &[Target]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| target | measured | met |");
    let _ = writeln!(out, "|---|---|---|");
    for t in ts {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "n/a",
        };
        let _ = writeln!(out, "| {} | {} | {} |", t.what, t.measured, met);
    }
    out
}

/// Reads one number of a latency summary.
type Pick = fn(&Summary) -> f64;

/// The two percentiles every latency row is shown at, and how to read each from a summary.
const PERCENTILES: [(&str, Pick); 2] = [("p50", |s| s.p50), ("p99", |s| s.p99)];

/// Every row of the ratio table, in order.
fn rows(r: Results) -> Vec<Row> {
    let mut rows = ingest_rows(r);
    rows.extend(freshness_rows(r));
    rows.extend(query_rows(r));
    rows.extend(footprint_rows(r));
    rows
}

/// ClickHouse's insert of the same slice as our phase `label`.
fn ch_phase<'a>(ch: Option<&'a ChOut>, label: &str) -> Option<&'a IngestRun> {
    ch.and_then(|c| c.ingest.iter().find(|(p, _)| p.label == label))
        .map(|(_, r)| r)
}

/// Our ingest phase `label`.
fn ours_phase<'a>(ours: &'a OursOut, label: &str) -> Option<&'a IngestRun> {
    ours.ingest
        .iter()
        .find(|(p, _)| p.label == label)
        .map(|(_, r)| r)
}

/// Throughput and acknowledgement latency of every ingest phase (ClickHouse's beside ours
/// where both sent batches of 1,000), and DuckDB's bulk load.
fn ingest_rows(r: Results) -> Vec<Row> {
    let mut rows = Vec::new();
    for (p, run) in &r.ours.ingest {
        let theirs = ch_phase(r.ch, p.label).filter(|_| p.batch == 1000);
        rows.push(
            Row::new(
                format!(
                    "ingest {}: batch {}, {} producer(s), {} events",
                    p.label, p.batch, p.producers, run.events
                ),
                "events/s",
                true,
            )
            .ours(run.events_per_second)
            .ch(theirs.map(|t| t.events_per_second)),
        );
        for (which, v) in PERCENTILES {
            rows.push(
                Row::new(
                    format!("ingest {} ack latency {which}", p.label),
                    "ms",
                    false,
                )
                .ours(v(&run.latency))
                .ch(theirs.map(|t| v(&t.latency))),
            );
        }
    }
    if let Some(d) = r.duck {
        rows.push(
            Row::new(
                "bulk load of the whole file (DuckDB read_json; not per-request durable)",
                "events/s",
                true,
            )
            .duck(Some(r.data.lines as f64 / d.load_seconds)),
        );
    }
    rows
}

/// 200-to-visible when idle (ours and ClickHouse), then during ingest D (ours).
fn freshness_rows(r: Results) -> Vec<Row> {
    let idle = PERCENTILES.map(|(which, v)| {
        Row::new(
            format!("freshness: 200 to visible in a query, idle, {which}"),
            "ms",
            false,
        )
        .ours(v(&r.ours.fresh_idle.visible))
        .ch(r.ch.map(|c| v(&c.fresh_idle.visible)))
    });
    let loaded = PERCENTILES.map(|(which, v)| {
        Row::new(
            format!("freshness: 200 to visible, during ingest D, {which}"),
            "ms",
            false,
        )
        .ours(v(&r.ours.fresh_load.visible))
    });
    idle.into_iter().chain(loaded).collect()
}

/// Every query's latency on every system, then queries per second.
fn query_rows(r: Results) -> Vec<Row> {
    let mut rows = Vec::new();
    for (i, q) in r.ours.queries.iter().enumerate() {
        let spec = &r.ours.specs[i];
        let chq = r.ch.map(|c| &c.queries[i]);
        let dq = r
            .duck
            .and_then(|d| d.queries.get(q.name))
            .map(|x| x.latencies().summary());
        for (which, v) in PERCENTILES {
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
        .ours(r.ours.qps)
        .ch(r.ch.map(|c| c.qps))
        .duck(r.duck.map(|d| d.qps)),
    );
    rows
}

/// Memory, disk and restart times.
fn footprint_rows(r: Results) -> Vec<Row> {
    let (ours, ch, duck) = (r.ours, r.ch, r.duck);
    vec![
        Row::new(
            "resident memory per million events, right after loading (all ids in the dedupe horizon, RT live)",
            "MB",
            false,
        )
        .ours(ours.rss_per_million / 1e6)
        .ch(ch.map(|c| c.rss_per_million / 1e6)),
        Row::new(
            "resident memory per million events of history (50 h later: dedupe expired, RT evicted)",
            "MB",
            false,
        )
        .ours(ours.rss_per_million_aged / 1e6),
        Row::new(
            "resident memory per active series (12 RT slots each, after a restart)",
            "bytes",
            false,
        )
        .ours(ours.rss_per_series),
        Row::new("disk per event", "bytes", false)
            .ours(ours.disk_per_event)
            .ch(ch.map(|c| c.disk_per_event))
            .duck(duck.map(|d| d.db_bytes as f64 / d.rows as f64)),
        Row::new(
            format!("restart to ready after SIGTERM, {} events", r.data.unique),
            "ms",
            false,
        )
        .ours(ours.ready_graceful_ms)
        .ch(ch.map(|c| c.ready_ms)),
        Row::new(
            format!("restart to ready after kill -9, {} events", r.data.unique),
            "ms",
            false,
        )
        .ours(ours.ready_crash_ms),
    ]
}

/// The targets of docs/performance.md, and whether this run met them.
fn target_rows(r: Results) -> Vec<Target> {
    let ours = r.ours;
    let d = ours_phase(ours, "D");
    let q = |name: &str| ours.queries.iter().find(|q| q.name == name);
    let mut targets = Vec::new();
    if let Some(d) = d {
        targets.push(Target {
            what: "ingest >= 300,000 events/s durably with 8 producers (batch 1,000)".into(),
            measured: format!("{} events/s", num(d.events_per_second)),
            met: Some(d.events_per_second >= 300_000.0),
        });
    }
    if let Some(t) = q("rt_5min") {
        let p99 = t.latency.p99;
        targets.push(Target {
            what: "RT 48 h five_min query p99 < 5 ms".into(),
            measured: format!("{p99:.2} ms"),
            met: Some(p99 < 5.0),
        });
    }
    if let Some(t) = q("batch_day_drill") {
        targets.push(Target {
            what: "batch 720-day day query over 1,000 series p99 < 50 ms".into(),
            measured: format!("{:.2} ms over {} series", t.latency.p99, t.series),
            met: Some(t.latency.p99 < 50.0 && t.series >= 1000),
        });
    }
    match r.ch {
        Some(ch) => targets.extend(clickhouse_targets(ours, ch)),
        None => targets.push(Target {
            what: "comparisons with ClickHouse".into(),
            measured: "not run (--no-clickhouse)".into(),
            met: None,
        }),
    }
    targets
}

/// The targets relative to ClickHouse: query speed-up, and ingest of the same rows.
fn clickhouse_targets(ours: &OursOut, ch: &ChOut) -> Vec<Target> {
    let mut targets = Vec::new();
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
    for label in ["C", "D"] {
        if let (Some(m), Some(t)) = (ours_phase(ours, label), ch_phase(Some(ch), label)) {
            targets.push(Target {
                what: format!(
                    "ingest >= ClickHouse insert of the same rows (phase {label}, batch 1,000, {} producer(s))",
                    m.producers
                ),
                measured: format!(
                    "{} vs {} events/s",
                    num(m.events_per_second),
                    num(t.events_per_second)
                ),
                met: Some(m.events_per_second >= t.events_per_second),
            });
        }
    }
    targets
}

/// The machine, in one line.
pub fn machine() -> String {
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
    let mem = procs::proc_kib("/proc/meminfo", "MemTotal:").map_or(0, |kb| kb >> 20);
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
pub fn source_revision() -> String {
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
fn noise_line(ours: &Noise, ch: Option<&Noise>) -> String {
    let (ok, ov) = ours.worst();
    let mut line = format!(
        "CPU used by other processes during timed phases: ocp-metrics at most {:.1}% ({ok})",
        ov * 100.0
    );
    let mut max = ov;
    if let Some(ch) = ch {
        let (ck, cv) = ch.worst();
        line.push_str(&format!(", ClickHouse at most {:.1}% ({ck})", cv * 100.0));
        max = max.max(cv);
    }
    line.push('.');
    if max > FOREIGN_SHARE_QUIET {
        line.push_str(" **WARNING: the machine was not quiet; these numbers are skewed.**");
    }
    line.push_str("\n\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(num(312_456.4), "312,456");
        assert_eq!(num(1_000.0), "1,000");
        assert_eq!(num(999.4), "999");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(1.234), "1.23");
        assert_eq!(num(0.01234), "0.012");
        assert_eq!(num(-12_345.0), "-12,345");
    }

    #[test]
    fn noise_line_names_the_worst_phase_and_warns_above_the_quiet_share() {
        let mut ours = Noise::default();
        ours.push("ingest A", 0.01);
        ours.push("query latency", 0.04);
        assert_eq!(
            noise_line(&ours, None),
            "CPU used by other processes during timed phases: ocp-metrics at most 4.0% (query latency).\n\n"
        );
        let mut ch = Noise::default();
        ch.push("queries per second", 0.2);
        assert_eq!(
            noise_line(&ours, Some(&ch)),
            "CPU used by other processes during timed phases: ocp-metrics at most 4.0% (query latency), ClickHouse at most 20.0% (queries per second). **WARNING: the machine was not quiet; these numbers are skewed.**\n\n"
        );
    }

    #[test]
    fn table_has_ratios() {
        let rows = vec![
            Row::new("q", "ms", false)
                .ours(1.0)
                .ch(Some(100.0))
                .duck(None),
        ];
        let t = table(&rows);
        assert!(
            t.contains("| q | ms | lower | 1.00 | 100 | - | 0.010 | - |"),
            "{t}"
        );
    }
}
