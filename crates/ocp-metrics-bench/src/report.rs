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
/// targets and the verdict on the answers. With several runs (`--runs`), every cell is the
/// median of the runs with their range in parentheses, and each target shows every run.
pub fn markdown(heading: &str, runs: &[Results], answers_equal: bool) -> String {
    let mut md = heading.to_string();
    for (i, r) in runs.iter().enumerate() {
        if runs.len() > 1 {
            md.push_str(&format!("Run {} of {}: ", i + 1, runs.len()));
        }
        md.push_str(&noise_line(&r.ours.noise, r.ch.map(|c| &c.noise)));
    }
    if runs.len() > 1 {
        md.push_str(&format!(
            "Each cell: the median of the {} runs, and (in parentheses) the lowest and highest.\n\n",
            runs.len()
        ));
    }
    let per_run: Vec<Vec<Row>> = runs.iter().map(|r| rows(*r)).collect();
    md.push_str(&table(&merge(&per_run)));
    md.push_str("\nTargets (issue 11");
    if runs.len() > 1 {
        md.push_str(", every run");
    }
    md.push_str("):\n\n");
    let per_run: Vec<Vec<Target>> = runs.iter().map(|r| target_rows(*r)).collect();
    md.push_str(&targets(&merge_targets(&per_run)));
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

/// A value of the table: one run's, or the median of several with their range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub median: f64,
    pub low: f64,
    pub high: f64,
}

impl Stat {
    pub fn one(v: f64) -> Stat {
        Stat {
            median: v,
            low: v,
            high: v,
        }
    }

    /// The median (the mean of the middle two for an even count) and the range of `values`;
    /// `None` if there are none.
    pub fn of(values: &[f64]) -> Option<Stat> {
        let mut v: Vec<f64> = values.to_vec();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Stat {
            median,
            low: v[0],
            high: v[n - 1],
        })
    }
}

/// One row of the ratio table. `None` is a measurement that a system does not have.
#[derive(Debug, Clone)]
pub struct Row {
    pub measure: String,
    pub unit: &'static str,
    pub ours: Option<Stat>,
    pub clickhouse: Option<Stat>,
    pub duckdb: Option<Stat>,
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
        self.ours = Some(Stat::one(v));
        self
    }

    pub fn ch(mut self, v: Option<f64>) -> Row {
        self.clickhouse = v.map(Stat::one);
        self
    }

    pub fn duck(mut self, v: Option<f64>) -> Row {
        self.duckdb = v.map(Stat::one);
        self
    }
}

/// The rows of several runs of the same data merged cell by cell (see [`Stat::of`]); a cell
/// missing from any run is left out.
pub fn merge(runs: &[Vec<Row>]) -> Vec<Row> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    let cell = |i: usize, f: fn(&Row) -> Option<Stat>| -> Option<Stat> {
        let values: Option<Vec<f64>> = runs
            .iter()
            .map(|r| r.get(i).and_then(f).map(|s| s.median))
            .collect();
        values.and_then(|v| Stat::of(&v))
    };
    first
        .iter()
        .enumerate()
        .map(|(i, row)| Row {
            ours: cell(i, |r| r.ours),
            clickhouse: cell(i, |r| r.clickhouse),
            duckdb: cell(i, |r| r.duckdb),
            ..row.clone()
        })
        .collect()
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

fn cell(v: Option<Stat>) -> String {
    match v {
        None => "-".into(),
        Some(s) if s.low == s.high => num(s.median),
        Some(s) => format!("{} ({}-{})", num(s.median), num(s.low), num(s.high)),
    }
}

/// The ratio of the medians.
fn ratio(ours: Option<Stat>, theirs: Option<Stat>) -> String {
    match (ours, theirs) {
        (Some(a), Some(b)) if b.median != 0.0 => num(a.median / b.median),
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

/// The targets of several runs: each measured value of every run, and met if every run met it
/// (`yes`), none did (`NO`), or some (`k of n`).
fn merge_targets(runs: &[Vec<Target>]) -> Vec<Target> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    if runs.len() == 1 {
        return first.clone();
    }
    first
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let all: Vec<&Target> = runs.iter().filter_map(|r| r.get(i)).collect();
            let measured: Vec<&str> = all.iter().map(|t| t.measured.as_str()).collect();
            let mets: Vec<bool> = all.iter().filter_map(|t| t.met).collect();
            let met_count = mets.iter().filter(|m| **m).count();
            Target {
                what: t.what.clone(),
                measured: measured.join(" / "),
                met: if mets.is_empty() {
                    None
                } else if met_count == mets.len() {
                    Some(true)
                } else if met_count == 0 {
                    Some(false)
                } else {
                    None
                },
            }
            .with_note(if met_count > 0 && met_count < mets.len() {
                Some(format!("{met_count} of {} runs", mets.len()))
            } else {
                None
            })
        })
        .collect()
}

impl Target {
    fn with_note(mut self, note: Option<String>) -> Target {
        if let Some(n) = note {
            self.measured.push_str(&format!(" (met in {n})"));
        }
        self
    }
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
    let sent: u64 = r.ours.ingest.iter().map(|(_, run)| run.events).sum();
    let ours_seconds: f64 = r.ours.ingest.iter().map(|(_, run)| run.seconds).sum();
    let ch_seconds = r.ch.map(|c| {
        c.ingest.iter().map(|(_, run)| run.seconds).sum::<f64>()
            + c.dedupe_seconds
            + c.rollup_seconds
    });
    rows.push(
        Row::new(
            format!(
                "whole load, {sent} events to deduplicated and queryable (ours: phases A-D, each request fsynced; ClickHouse: the inserts + dedupe + rollup fill, not fsynced)"
            ),
            "events/s",
            true,
        )
        .ours(sent as f64 / ours_seconds)
        .ch(ch_seconds.map(|s| sent as f64 / s)),
    );
    rows.push(
        Row::new(
            "load steps after the inserts: dedupe (ClickHouse LIMIT 1 BY, DuckDB DISTINCT ON) + filling the rollups",
            "s",
            false,
        )
        .ch(r.ch.map(|c| c.dedupe_seconds + c.rollup_seconds))
        .duck(r.duck.map(|d| d.dedupe_seconds + d.rollup_seconds)),
    );
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

/// Every query's latency on every system: the baselines on their rollups, then (a second line)
/// on the deduplicated raw events; then queries per second, likewise.
fn query_rows(r: Results) -> Vec<Row> {
    let mut rows = Vec::new();
    for (i, q) in r.ours.queries.iter().enumerate() {
        let spec = &r.ours.specs[i];
        let duck = r.duck.and_then(|d| d.queries.get(q.name));
        let ch_rollup = r.ch.map(|c| c.rollup_queries[i].latency);
        let ch_raw = r.ch.map(|c| c.queries[i].latency);
        let duck_rollup = duck.map(|x| x.rollup_latencies().summary());
        let duck_raw = duck.map(|x| x.latencies().summary());
        for (which, v) in PERCENTILES {
            rows.push(
                Row::new(
                    format!(
                        "query {} ({} series x {} buckets) {which}, baselines on their rollups",
                        spec.name, q.series, q.buckets
                    ),
                    "ms",
                    false,
                )
                .ours(v(&q.latency))
                .ch(ch_rollup.as_ref().map(v))
                .duck(duck_rollup.as_ref().map(v)),
            );
            rows.push(
                Row::new(
                    format!("query {} {which}, baselines on raw events", spec.name),
                    "ms",
                    false,
                )
                .ours(v(&q.latency))
                .ch(ch_raw.as_ref().map(v))
                .duck(duck_raw.as_ref().map(v)),
            );
        }
    }
    rows.push(
        Row::new(
            "queries per second, 8 clients, the 7 queries in turn, baselines on their rollups",
            "q/s",
            true,
        )
        .ours(r.ours.qps)
        .ch(r.ch.map(|c| c.qps))
        .duck(r.duck.map(|d| d.qps)),
    );
    rows.push(
        Row::new(
            "queries per second, 8 clients, baselines on raw events",
            "q/s",
            true,
        )
        .ours(r.ours.qps)
        .ch(r.ch.map(|c| c.qps_raw))
        .duck(r.duck.map(|d| d.qps_raw)),
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

/// The targets of issue 11 (docs/performance.md), and whether this run met them.
fn target_rows(r: Results) -> Vec<Target> {
    let ours = r.ours;
    let q = |name: &str| ours.queries.iter().find(|q| q.name == name);
    let mut targets = Vec::new();
    if let Some(d) = ours_phase(ours, "D") {
        targets.push(Target {
            what: "ingest D (batch 1,000, 8 producers), durable, >= 600,000 events/s".into(),
            measured: format!("{} events/s", num(d.events_per_second)),
            met: Some(d.events_per_second >= 600_000.0),
        });
    }
    for (name, limit) in [("batch_day_drill", 20.0), ("rt_5min_drill", 15.0)] {
        if let Some(t) = q(name) {
            targets.push(Target {
                what: format!("`{name}` p99 < {limit} ms"),
                measured: format!("{:.1} ms over {} series", t.latency.p99, t.series),
                met: Some(t.latency.p99 < limit),
            });
        }
    }
    match r.ch {
        Some(ch) => targets.extend(clickhouse_targets(ours, ch)),
        None => targets.push(Target {
            what: "comparisons with ClickHouse".into(),
            measured: "not run (--no-clickhouse)".into(),
            met: None,
        }),
    }
    targets.push(Target {
        what: "restart to ready after SIGTERM < 2 s".into(),
        measured: format!("{:.2} s", ours.ready_graceful_ms / 1000.0),
        met: Some(ours.ready_graceful_ms < 2000.0),
    });
    targets.push(Target {
        what: "restart to ready after kill -9 < 4 s".into(),
        measured: format!("{:.2} s", ours.ready_crash_ms / 1000.0),
        met: Some(ours.ready_crash_ms < 4000.0),
    });
    let mb = ours.rss_per_million / 1e6;
    targets.push(Target {
        what: "resident memory per million events right after loading < 35 MB".into(),
        measured: format!("{mb:.1} MB"),
        met: Some(mb < 35.0),
    });
    targets
}

/// The queries without a drilldown, which must be 5x faster than ClickHouse on its rollup.
const NON_DRILLDOWN_SPEEDUP: f64 = 5.0;

/// The targets relative to ClickHouse on its rollup: ours faster on every query at p50 and p99,
/// and 5x on the queries without a drilldown.
fn clickhouse_targets(ours: &OursOut, ch: &ChOut) -> Vec<Target> {
    let mut worst_plain: Option<(&str, &str, f64)> = None;
    let mut worst_drill: Option<(&str, &str, f64)> = None;
    for ((o, t), spec) in ours.queries.iter().zip(&ch.rollup_queries).zip(&ours.specs) {
        for (which, v) in PERCENTILES {
            let speedup = v(&t.latency) / v(&o.latency).max(1e-9);
            let worst = if spec.drilldown {
                &mut worst_drill
            } else {
                &mut worst_plain
            };
            if worst.is_none_or(|w| speedup < w.2) {
                *worst = Some((o.name, which, speedup));
            }
        }
    }
    let mut targets = Vec::new();
    if let Some((name, which, x)) = worst_plain {
        targets.push(Target {
            what: format!(
                "the five queries without a drilldown >= {NON_DRILLDOWN_SPEEDUP}x faster than ClickHouse on its rollup (p50 and p99)"
            ),
            measured: format!("slowest speed-up {x:.1}x ({name} {which})"),
            met: Some(x >= NON_DRILLDOWN_SPEEDUP),
        });
    }
    if let Some((name, which, x)) = worst_drill {
        targets.push(Target {
            what: "the drilldowns faster than ClickHouse on its rollup (p50 and p99)".into(),
            measured: format!("slowest speed-up {x:.1}x ({name} {which})"),
            met: Some(x > 1.0),
        });
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
    fn runs_merge_into_median_and_range() {
        assert_eq!(Stat::of(&[]), None);
        let s = Stat::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.low, s.high), (2.0, 1.0, 3.0));
        assert_eq!(Stat::of(&[1.0, 4.0]).unwrap().median, 2.5);
        let run = |o: f64, c: Option<f64>| vec![Row::new("q", "ms", false).ours(o).ch(c)];
        let merged = merge(&[run(1.0, Some(100.0)), run(3.0, Some(90.0)), run(2.0, None)]);
        assert_eq!(merged[0].ours, Stat::of(&[1.0, 2.0, 3.0]));
        assert_eq!(
            merged[0].clickhouse, None,
            "a cell missing from a run is left out"
        );
        let t = table(&merged);
        assert!(
            t.contains("| q | ms | lower | 2.00 (1.00-3.00) | - |"),
            "{t}"
        );
        let target = |m: bool| Target {
            what: "t".into(),
            measured: format!("{m}"),
            met: Some(m),
        };
        let all = merge_targets(&[vec![target(true)], vec![target(true)]]);
        assert_eq!(
            (all[0].measured.as_str(), all[0].met),
            ("true / true", Some(true))
        );
        let some = merge_targets(&[vec![target(true)], vec![target(false)]]);
        assert_eq!(some[0].met, None);
        assert!(
            some[0].measured.ends_with("(met in 1 of 2 runs)"),
            "{}",
            some[0].measured
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
