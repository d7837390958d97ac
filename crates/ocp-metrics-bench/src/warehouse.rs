//! `ocp-metrics-bench warehouse`: a cluster node's memory with its batch history in memory and
//! in ClickHouse, for 1, 10 and 100 tenants of 720-day history, and the 720-day batch queries
//! over 1,000 series by day (drilled down, and summed) answered from each.
//!
//! Each configuration runs alone: one nats-server (replicas 1), ClickHouse when it is the
//! warehouse, one node. Every tenant gets the same number of events spread over 719 days,
//! miniApp ends over 40 names x 25 languages (1,000 series) and session ends. Memory is the
//! node's RSS once the history is written (ClickHouse) or applied (memory). The two modes'
//! answers to the same query must be equal, byte for byte: the run fails otherwise. Nothing
//! here asserts a timing.

use crate::clickhouse::ClickHouse;
use crate::cluster::node::Node;
use crate::http;
use crate::say;
use crate::stats::{Latencies, Summary};
use anyhow::bail;
use jiff::Timestamp;
use ocp_metrics_cluster::testing::NatsCluster;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The warehouse benchmark's options.
#[derive(Debug, clap::Args)]
pub struct WarehouseArgs {
    /// Tenant counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    tenants: Vec<usize>,
    /// History events per tenant.
    #[arg(long, default_value_t = 20_000)]
    events_per_tenant: usize,
    /// Timed runs of each query.
    #[arg(long, default_value_t = 60)]
    iterations: usize,
    /// The `ocp-metrics` binary.
    #[arg(long, default_value = "target/release/ocp-metrics")]
    server_bin: PathBuf,
    /// Where the report goes.
    #[arg(long, default_value = "target/bench/warehouse.md")]
    report: PathBuf,
}

/// Events per ingest request.
const BATCH_EVENTS: usize = 1_000;
/// miniApp names and languages: 40 x 25 = 1,000 series in the drilldown.
const NAMES: usize = 40;
const LANGUAGES: [&str; 25] = [
    "en-US", "en-GB", "el-GR", "de-DE", "fr-FR", "es-ES", "it-IT", "pt-BR", "nl-NL", "sv-SE",
    "da-DK", "fi-FI", "nb-NO", "pl-PL", "cs-CZ", "hu-HU", "ro-RO", "tr-TR", "ru-RU", "uk-UA",
    "ja-JP", "ko-KR", "zh-CN", "hi-IN", "ar-SA",
];
/// How long the history may take to reach ClickHouse after the last request.
const WRITTEN_DEADLINE: Duration = Duration::from_secs(300);

/// One measured configuration.
struct Row {
    tenants: usize,
    mode: &'static str,
    events: usize,
    rss_mb: f64,
    slots_held: f64,
    held_cells: f64,
    ingest_s: f64,
    drill: Summary,
    total: Summary,
    drill_bytes: usize,
}

pub fn main(args: &WarehouseArgs) -> anyhow::Result<bool> {
    if !args.server_bin.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p ocp-metrics`",
            args.server_bin.display()
        );
    }
    let now = Timestamp::now();
    let work = std::env::temp_dir().join(format!("ocpm-warehouse-bench-{}", std::process::id()));
    let mut rows = Vec::new();
    let mut equal = true;
    for &tenants in &args.tenants {
        let mut answers = Vec::new();
        for mode in ["memory", "clickhouse"] {
            let dir = work.join(format!("{mode}-{tenants}"));
            let (row, answer) = run(args, &dir, mode, tenants, now)?;
            say(format!(
                "warehouse bench: {tenants} tenants, {mode}: RSS {:.1} MB, drill p99 {:.1} ms",
                row.rss_mb, row.drill.p99
            ));
            rows.push(row);
            answers.push(answer);
            let _ = std::fs::remove_dir_all(&dir);
        }
        if answers[0] != answers[1] {
            equal = false;
            say(format!(
                "warehouse bench: {tenants} tenants: the two modes' answers differ"
            ));
        }
    }
    let report = render(&rows, equal, now);
    if let Some(parent) = args.report.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.report, &report)?;
    println!("{report}");
    Ok(equal)
}

/// One configuration: start, load, wait, measure, stop. Returns the row and the answers.
fn run(
    args: &WarehouseArgs,
    dir: &Path,
    mode: &'static str,
    tenants: usize,
    now: Timestamp,
) -> anyhow::Result<(Row, Vec<Vec<u8>>)> {
    std::fs::create_dir_all(dir)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let nats = rt.block_on(NatsCluster::start(1));
    let clickhouse = if mode == "clickhouse" {
        Some(ClickHouse::start(&dir.join("clickhouse"))?.0)
    } else {
        None
    };
    let mut extra = vec![
        "--nats".to_string(),
        nats.url(0),
        "--nats-replicas".into(),
        "1".into(),
    ];
    if let Some(ch) = &clickhouse {
        extra.extend(["--clickhouse-url".to_string(), ch.url.clone()]);
    }
    let (mut node, _) = Node::start(
        &args.server_bin,
        &dir.join("node"),
        &dir.join("node.log"),
        &extra,
    )?;
    let token = node.create_token()?;
    let agent = http::agent();
    let started = Instant::now();
    let mut events = 0;
    for t in 0..tenants {
        let lines = history(t, args.events_per_tenant, now);
        events += lines.len();
        for chunk in lines.chunks(BATCH_EVENTS) {
            let body: String = chunk.iter().map(|l| format!("{l}\n")).collect();
            let (status, answer) = node.post(
                &agent,
                "/ingest/v1/events",
                &token,
                "application/x-ndjson",
                body.as_bytes(),
            )?;
            if status != 200 {
                bail!(
                    "ingest answered {status}: {}",
                    String::from_utf8_lossy(&answer)
                );
            }
        }
    }
    let ingest_s = started.elapsed().as_secs_f64();
    if clickhouse.is_some() {
        // The last block closes when the stream time enters a new window.
        std::thread::sleep(Duration::from_millis(2_500));
        // In a group of its own, so that tenant 0's answers are the same in both modes.
        let nudge = history(0, 1, now)
            .remove(0)
            .replace("\"group\":\"tenant-000\"", "\"group\":\"nudge\"");
        node.post(
            &agent,
            "/ingest/v1/events",
            &token,
            "application/x-ndjson",
            format!("{nudge}\n").as_bytes(),
        )?;
        let waited = Instant::now();
        while node.metric("ocp_metrics_warehouse_pending_events")? > 0.0 {
            if waited.elapsed() > WRITTEN_DEADLINE {
                bail!("the history was not written to ClickHouse within {WRITTEN_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    if let Some(ch) = &clickhouse {
        // The steady state: the writer merges each partition into one part once it has not been
        // written for a while, and reads of merged partitions need no FINAL.
        let waited = Instant::now();
        loop {
            let split = ch.count(
                "SELECT count() - uniqExact(partition) FROM system.parts WHERE database = 'ocp_metrics' AND table = 'batch_slots' AND active",
            )?;
            if split == 0 {
                break;
            }
            if waited.elapsed() > WRITTEN_DEADLINE {
                bail!("{split} extra parts still not merged after {WRITTEN_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    // Let allocations settle (the apply task's buffers, a snapshot) before reading RSS.
    std::thread::sleep(Duration::from_secs(3));
    let rss_mb = node.proc.rss_bytes() as f64 / 1e6;
    let slots_held = node.metric("ocp_metrics_slots")?;
    let held_cells = node
        .metric("ocp_metrics_warehouse_held_cells")
        .unwrap_or(0.0);
    let (drill_q, total_q) = queries(now)?;
    let mut answers = Vec::new();
    let mut summaries = Vec::new();
    for (path, body) in [
        ("/metrics-api/v3/batch/metrics/miniapps", drill_q),
        ("/metrics-api/v3/batch/metrics/miniapps", total_q),
    ] {
        let mut lat = Latencies::default();
        let mut last = Vec::new();
        for _ in 0..args.iterations {
            let (answer, took) = node.query(&agent, &token, path, &body)?;
            lat.push(took);
            last = answer;
        }
        summaries.push(lat.summary());
        answers.push(last);
    }
    let drill_bytes = answers[0].len();
    let _ = node.proc.terminate(Duration::from_secs(30));
    drop(clickhouse);
    drop(nats);
    Ok((
        Row {
            tenants,
            mode,
            events,
            rss_mb,
            slots_held,
            held_cells,
            ingest_s,
            drill: summaries[0],
            total: summaries[1],
            drill_bytes,
        },
        answers,
    ))
}

/// Tenant `t`'s history: `n` events spread over 719 days before `now`, alternately a miniApp
/// end (one of 1,000 name x language series) and a session end.
fn history(t: usize, n: usize, now: Timestamp) -> Vec<String> {
    let day_ms = 86_400_000i64;
    let now_ms = now.as_millisecond();
    (0..n)
        .map(|i| {
            let day = (i * 7919 % 719) as i64 + 1;
            let minute = (i * 104_729 % 1_440) as i64;
            let time = now_ms - day * day_ms + minute * 60_000;
            let ts = |ms: i64| Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_default();
            let base = format!(
                r#""id":"e{i}","group":"tenant-{t:03}","session_id":"s{}","channel":"{}","region":"eu1","test":false,"time":"{}","started_at":"{}""#,
                i / 2,
                if i % 3 == 0 { "chat" } else { "omIVR" },
                ts(time),
                ts(time - 30_000)
            );
            if i % 2 == 0 {
                format!(
                    r#"{{{base},"type":"miniapp_end","miniapp_name":"app-{}","miniapp_id":"id-{}","miniapp_type":"Intent","locale":"{}","result":"success"}}"#,
                    i / 2 % NAMES,
                    i / 2 % NAMES,
                    LANGUAGES[i / 2 / NAMES % LANGUAGES.len()]
                )
            } else {
                format!(r#"{{{base},"type":"session_end"}}"#)
            }
        })
        .collect()
}

/// The two timed queries over tenant 0's 720 days, by day in Asia/Kolkata: miniApp invocations
/// drilled down by name and language (1,000 series in the answer), and summed over those 1,000
/// series (one series in the answer).
fn queries(now: Timestamp) -> anyhow::Result<(String, String)> {
    let tz = jiff::tz::TimeZone::get("Asia/Kolkata")?;
    let local = |t: Timestamp| {
        t.to_zoned(tz.clone())
            .strftime("%Y/%m/%d %H:%M:%S")
            .to_string()
    };
    let start = local(now.checked_sub(jiff::SignedDuration::from_hours(24 * 719))?);
    let end = local(now.checked_sub(jiff::SignedDuration::from_hours(12))?);
    let drill = serde_json::json!({
        "metrics": ["totalinvocations"],
        "filters": {"miniapp_name": [], "language": []},
        "start": start, "end": end, "group": "tenant-000",
        "downsampling": "day", "drilldown": true, "timezone": "Asia/Kolkata",
    });
    let total = serde_json::json!({
        "metrics": ["totalinvocations"],
        "start": start, "end": end, "group": "tenant-000",
        "downsampling": "day", "drilldown": false, "timezone": "Asia/Kolkata",
    });
    Ok((drill.to_string(), total.to_string()))
}

fn render(rows: &[Row], equal: bool, now: Timestamp) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Warehouse benchmark, {now}: one node on one nats-server (R1); the two modes' answers {}.\n",
        if equal {
            "were equal, byte for byte"
        } else {
            "DIFFERED"
        }
    );
    let _ = writeln!(
        out,
        "| tenants | events | batch history | node RSS, MB | slots held | batch cells held | ingest, s | 720-day drill (1,000 series) p50 / p99, ms | 720-day sum of 1,000 series p50 / p99, ms | drill answer, KB |"
    );
    let _ = writeln!(out, "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} | {:.0} | {:.0} | {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.0} |",
            r.tenants,
            r.events,
            r.mode,
            r.rss_mb,
            r.slots_held,
            r.held_cells,
            r.ingest_s,
            r.drill.p50,
            r.drill.p99,
            r.total.p50,
            r.total.p99,
            r.drill_bytes as f64 / 1024.0
        );
    }
    out
}
