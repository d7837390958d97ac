//! `ocp-metrics-bench cluster`: cluster mode measured against the embedded mode on the same
//! generated events, one configuration after the other:
//!
//! - **(a)** one embedded node (no NATS);
//! - **(b)** one node on a standalone JetStream server (stream replicas 1), started with
//!   snapshots effectively off so that a wiped node must replay the whole stream;
//! - **(c)** three nodes on a three-server JetStream cluster (replicas 3), producers spread
//!   round-robin over the nodes, snapshots every `--snapshot-interval-seconds`.
//!
//! For each: ingest rate and acknowledgement latency (every request answered 200, accepted +
//! duplicates = sent, nothing refused), the time until every node has applied the whole
//! stream, the dashboard query suite sequentially on every node (each node's answer must equal
//! node 0's, byte for byte), freshness from a 200 on one node to visible on it and on the next,
//! RSS of every process, and the CPU each process used while ingesting. Then catch-up: in (b)
//! and (c) a node is killed, its data directory wiped, and started again; (b) replays the whole
//! stream, (c) starts from a snapshot. Nothing here asserts a timing: the run reports them, and
//! fails only when an answer or a count is wrong.

pub mod node;
mod report;

use crate::data::{self, DataSize, DataStats, GROUP};
use crate::http::{self, IngestRun, IngestTarget};
use crate::procs;
use crate::queries::Suite;
use crate::say;
use crate::stats::{self, Latencies, Summary, ms};
use anyhow::{Context, bail};
use node::Node;
use ocp_metrics_cluster::testing::NatsCluster;
use serde::Serialize;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The cluster benchmark's options.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Events to generate (about: the simulator's rates are means). Default: one million, so
    /// that the whole run stays under ten minutes on two cores.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Concurrent ingest clients (spread round-robin over the nodes).
    #[arg(long, default_value_t = 6)]
    producers: usize,
    /// Events per ingest request.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Snapshot interval of configuration (c)'s nodes for the catch-up from a snapshot. Node 0
    /// is restarted with it after the measurements; until then snapshots are off (see
    /// `--snapshots-while-ingesting`).
    #[arg(long, default_value_t = 10)]
    snapshot_interval_seconds: u64,
    /// Start configuration (c)'s nodes with `--snapshot-interval-seconds` already, so that they
    /// write snapshots (and purge the stream behind them) while ingesting. On two shared cores a
    /// node that falls further behind than the older kept snapshot then stops applying for
    /// good (see docs/cluster-bench.md), and the run hangs until its deadlines: off by default.
    #[arg(long)]
    snapshots_while_ingesting: bool,
    /// Groups of the memory-per-group run (on configuration (b)'s node; 0 skips it).
    #[arg(long, default_value_t = 100)]
    tenant_groups: usize,
    /// Events of each of those groups.
    #[arg(long, default_value_t = 3000)]
    tenant_events: usize,
    /// Timed runs of each query on each node.
    #[arg(long, default_value_t = 20)]
    iterations: usize,
    /// Freshness probes per configuration.
    #[arg(long, default_value_t = 20)]
    probes: usize,
    /// The `ocp-metrics` binary.
    #[arg(long, default_value = "target/release/ocp-metrics")]
    server_bin: PathBuf,
    /// Working directory for the data file and the stores (default: a new one under /tmp,
    /// removed at the end unless --keep).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    #[arg(long)]
    keep: bool,
    /// Write the full results as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Write the report (Markdown) here.
    #[arg(long)]
    markdown_out: Option<PathBuf>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Before ingest and before the queries of each configuration, wait up to this many
    /// seconds for other processes to leave the CPUs alone (the machine is shared); what they
    /// used during ingest is reported either way.
    #[arg(long, default_value_t = 30)]
    quiet_wait: u64,
}

/// Configuration (b)'s snapshot interval: longer than any run, so that no snapshot is ever
/// written and the wiped node replays the whole stream.
const NO_SNAPSHOT_SECONDS: u64 = 100_000;
/// How long a token created on node 0 may take to work on another node: the contract says
/// about 1 s; the rest is headroom for a loaded two-core machine.
const TOKEN_DEADLINE: Duration = Duration::from_secs(30);
/// How long every node may take to apply the whole stream after the last 200.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(600);
/// A lagging node whose applied sequence has not moved for this long has stopped for good (its
/// next message was purged from the stream): the run fails rather than wait out the deadline.
const STUCK_AFTER: Duration = Duration::from_secs(60);
/// Pause between two looks at the nodes' `/metrics` while waiting for them.
const POLL: Duration = Duration::from_millis(50);
/// Pause before reading the RSS of a server, so that it has settled.
const SETTLE: Duration = Duration::from_millis(500);
/// How the full benchmark splits its 10 million events (history and recent, simulator and
/// long tail), out of ten: the same mix at any size.
const MIX_OF_TEN: [f64; 4] = [5.5, 1.5, 2.0, 1.0];

/// Runs the cluster benchmark; Ok(true) when every count and answer was right.
pub fn main(args: &ClusterArgs) -> anyhow::Result<bool> {
    let work = match &args.work_dir {
        Some(w) => w.clone(),
        None => std::env::temp_dir().join(format!("ocp-metrics-cluster-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    procs::set_quiet_wait(args.quiet_wait);
    let bin = std::fs::canonicalize(&args.server_bin)
        .with_context(|| format!("no server binary at {}", args.server_bin.display()))?;
    let result = run_in(args, &work, &bin);
    if !args.keep && args.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

/// Everything one configuration measured.
#[derive(Debug, Serialize)]
pub struct ConfigResult {
    pub label: &'static str,
    pub nodes: usize,
    pub nats_servers: usize,
    pub replicas: usize,
    /// The nodes' `--snapshot-interval-seconds` while ingesting (none: embedded).
    pub snapshot_interval_seconds: Option<u64>,
    pub ready_empty_ms: Vec<f64>,
    /// Per node after the first: from the token's creation on node 0 to accepted there.
    pub token_visible_ms: Vec<f64>,
    pub ingest: IngestRun,
    pub counts_ok: bool,
    /// From the last 200 until every node had applied the whole stream.
    pub converged_after_ingest_ms: f64,
    pub stream_last_sequence: f64,
    pub cpu_during_ingest: Vec<CpuUse>,
    pub queries: Vec<QueryRow>,
    /// Every query's samples on each node, pooled.
    pub query_per_node: Vec<Summary>,
    pub query_all: Summary,
    pub answers_compared: usize,
    pub answers_equal: usize,
    pub answer_mismatches: Vec<String>,
    /// Node 0's answers compared with the embedded node's, for the queries whose request was
    /// the same (the real-time window moves with the clock, so not always all of them).
    pub same_as_embedded: Option<(usize, usize)>,
    /// Per query: its request body and node 0's answer.
    #[serde(skip)]
    pub reference: Vec<(String, Vec<u8>)>,
    pub fresh_ack: Summary,
    pub fresh_same_node: Summary,
    pub fresh_other_node: Option<Summary>,
    pub rss_node_idle: Vec<u64>,
    pub rss_node_loaded: Vec<u64>,
    pub rss_nats: Vec<u64>,
    pub groups: f64,
    pub series: f64,
    /// Mean over nodes of (loaded - idle RSS) / groups with data.
    pub rss_per_group_bytes: f64,
    /// Restarts of nodes, in order: what was done and how the node caught up.
    pub catch_up: Vec<CatchUp>,
    pub tenants: Option<TenantMemory>,
}

/// RSS per group: many small groups added to a node that already holds the big one.
#[derive(Debug, Serialize)]
pub struct TenantMemory {
    pub groups_added: usize,
    pub events_per_group: usize,
    pub events_per_second: f64,
    pub accepted: u64,
    pub rejected: u64,
    pub groups_before: f64,
    pub groups_after: f64,
    pub rss_before_bytes: u64,
    pub rss_after_bytes: u64,
    pub rss_per_group_bytes: f64,
}

/// One query's latency on each node.
#[derive(Debug, Serialize)]
pub struct QueryRow {
    pub name: &'static str,
    pub per_node: Vec<Summary>,
    pub pooled: Summary,
}

/// The CPU a process used during a phase, in cores (1.0 = one core busy all the time).
#[derive(Debug, Clone, Serialize)]
pub struct CpuUse {
    pub process: String,
    pub cores: f64,
}

/// A node's start on a cluster that holds data: after a wipe, or a restart.
#[derive(Debug, Serialize)]
pub struct CatchUp {
    pub node: usize,
    pub what: String,
    /// Spawn to `/readyz` 200.
    pub ready_ms: f64,
    /// The node's own `ocp_metrics_cluster_catch_up_seconds`.
    pub catch_up_seconds: f64,
    /// The snapshot it started from (0: none, the whole stream replayed).
    pub start_sequence: f64,
    pub stream_last_sequence: f64,
    /// Stream messages (one per event) applied after the snapshot.
    pub replayed_events: f64,
    /// Replayed events per second of `catch_up_seconds` (0 when nothing was replayed).
    pub replay_events_per_second: f64,
    pub seconds_per_million_events: f64,
    /// Seconds waited for a snapshot covering the stream before the wipe.
    pub snapshot_wait_seconds: f64,
    pub rss_after_bytes: u64,
    pub answers_equal: bool,
}

/// The whole report: the data, the three configurations, the machine.
#[derive(Debug, Serialize)]
pub struct Results {
    pub command: String,
    pub machine: String,
    pub version: String,
    pub nats_server: String,
    pub producers: usize,
    pub batch_size: usize,
    pub iterations: usize,
    pub data: DataStats,
    pub configs: Vec<ConfigResult>,
    pub ok: bool,
}

fn run_in(args: &ClusterArgs, work: &Path, bin: &Path) -> anyhow::Result<bool> {
    say(format!("cluster benchmark, work dir {}", work.display()));
    let data_path = work.join("events.ndjson");
    let f = |share: f64| (args.events as f64 * share / 10.0).round() as u64;
    let size = DataSize {
        history_sim: f(MIX_OF_TEN[0]),
        history_tail: f(MIX_OF_TEN[1]),
        recent_sim: f(MIX_OF_TEN[2]),
        recent_tail: f(MIX_OF_TEN[3]),
        tail_names: data::TAIL_NAMES,
    };
    let data = data::generate(&data_path, size, jiff::Timestamp::now(), args.seed)?;
    say(format!(
        "{} events ({} distinct), {} MB, generated in {:.1} s",
        data.lines,
        data.unique,
        data.bytes >> 20,
        data.generate_seconds
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let b = Bench {
        args,
        work,
        bin,
        data_path: &data_path,
        data: &data,
        run_id: jiff::Timestamp::now().as_millisecond() as u64,
    };

    let embedded = b.configuration(Setup::Embedded)?;

    let nats = rt.block_on(NatsCluster::start(1));
    let r1 = b.configuration(Setup::Nats(&nats, 1, NO_SNAPSHOT_SECONDS))?;
    drop(nats);

    let nats = rt.block_on(NatsCluster::start(3));
    let while_ingesting = if args.snapshots_while_ingesting {
        args.snapshot_interval_seconds
    } else {
        NO_SNAPSHOT_SECONDS
    };
    let r3 = b.configuration(Setup::Nats(&nats, 3, while_ingesting))?;
    drop(nats);

    let mut configs = vec![embedded, r1, r3];
    for c in 1..configs.len() {
        let (e, x) = (&configs[0].reference, &configs[c].reference);
        let same: Vec<bool> = e
            .iter()
            .zip(x)
            .filter(|(a, b)| a.0 == b.0)
            .map(|(a, b)| a.1 == b.1)
            .collect();
        let equal = same.iter().filter(|s| **s).count();
        say(format!(
            "{}: {equal} of {} answers equal to the embedded node's (same requests)",
            configs[c].label,
            same.len()
        ));
        configs[c].same_as_embedded = Some((equal, same.len()));
    }
    let ok = configs.iter().all(|c| {
        c.counts_ok
            && c.same_as_embedded.is_none_or(|(e, n)| e == n)
            && c.answers_equal == c.answers_compared
            && c.catch_up.iter().all(|k| k.answers_equal)
            && c.tenants.as_ref().is_none_or(|t| t.rejected == 0)
    });
    let results = Results {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: crate::report::machine(),
        version: format!("{} ({})", version(bin), crate::report::source_revision()),
        nats_server: nats_version(),
        producers: args.producers,
        batch_size: args.batch_size,
        iterations: args.iterations,
        data,
        configs,
        ok,
    };
    let md = report::markdown(&results);
    println!("\n{md}");
    if let Some(p) = &args.markdown_out {
        std::fs::write(p, &md)?;
    }
    if let Some(p) = &args.json_out {
        std::fs::write(p, serde_json::to_vec_pretty(&results)?)?;
    }
    Ok(ok)
}

/// How a configuration's nodes run.
#[derive(Clone, Copy)]
enum Setup<'a> {
    Embedded,
    /// `n` nodes on these NATS servers, stream replicas = n, a snapshot interval in seconds.
    Nats(&'a NatsCluster, usize, u64),
}

/// What every configuration shares.
struct Bench<'a> {
    args: &'a ClusterArgs,
    work: &'a Path,
    bin: &'a Path,
    data_path: &'a Path,
    data: &'a DataStats,
    /// Makes probe ids unique across runs.
    run_id: u64,
}

impl Bench<'_> {
    /// Starts the configuration's nodes, measures it, and (in cluster mode) a wiped node's
    /// catch-up; stops everything.
    fn configuration(&self, setup: Setup) -> anyhow::Result<ConfigResult> {
        let (label, key, n, interval) = match setup {
            Setup::Embedded => ("1 node, embedded", "embedded", 1, None),
            Setup::Nats(_, 1, i) => ("1 node, NATS R1", "r1", 1, Some(i)),
            Setup::Nats(_, n, i) => ("3 nodes, NATS R3", "r3", n, Some(i)),
        };
        say(format!("configuration {label}"));
        let dir = self.work.join(key);
        let _ = std::fs::remove_dir_all(&dir);
        let extra: Vec<String> = match setup {
            Setup::Embedded => Vec::new(),
            Setup::Nats(nats, n, interval) => nats_args(nats, n, interval),
        };
        let nats_pids: Vec<u32> = match setup {
            Setup::Embedded => Vec::new(),
            Setup::Nats(nats, n, _) => (0..n).filter_map(|i| nats.pid(i)).collect(),
        };
        // One after the other: the first node creates the stream and the buckets.
        let mut nodes = Vec::new();
        let mut ready_empty_ms = Vec::new();
        for i in 0..n {
            let (node, ready) = Node::start(
                self.bin,
                &dir.join(format!("node{i}")),
                &dir.join(format!("node{i}.log")),
                &extra,
            )?;
            ready_empty_ms.push(ms(ready));
            nodes.push(node);
        }
        let token = nodes[0].create_token()?;
        let token_visible_ms = nodes[1..]
            .iter()
            .map(|node| node.await_token(&token, TOKEN_DEADLINE).map(ms))
            .collect::<anyhow::Result<Vec<_>>>()?;
        std::thread::sleep(SETTLE);
        let rss_node_idle: Vec<u64> = nodes.iter().map(|n| n.proc.rss_bytes()).collect();

        let (ingest, cpu_during_ingest) = self.ingest(&nodes, &nats_pids, &token)?;
        let ingest_end = Instant::now();
        let stream_last_sequence = converge(&nodes, setup)?;
        let converged_after_ingest_ms = ms(ingest_end.elapsed());
        // One stream message per stored event: the stream must hold each distinct event once,
        // even when a retried request's events had been stored the first time.
        let stream_ok =
            matches!(setup, Setup::Embedded) || stream_last_sequence == self.data.unique as f64;
        if !stream_ok {
            eprintln!(
                "  {label}: the stream holds {stream_last_sequence} messages for {} distinct events",
                self.data.unique
            );
        }
        let counts_ok = self.counts_ok(label, &ingest) && stream_ok;
        std::thread::sleep(SETTLE);
        let rss_node_loaded: Vec<u64> = nodes.iter().map(|n| n.proc.rss_bytes()).collect();
        let rss_nats: Vec<u64> = nats_pids.iter().map(|p| procs::rss_of(*p)).collect();
        let groups = nodes[0].metric("ocp_metrics_groups")?;
        let series = nodes[0].metric("ocp_metrics_series")?;
        let rss_per_group_bytes = rss_node_loaded
            .iter()
            .zip(&rss_node_idle)
            .map(|(l, i)| l.saturating_sub(*i) as f64)
            .sum::<f64>()
            / n as f64
            / groups.max(1.0);
        say(format!(
            "{label}: converged {:.0} ms after the last 200; RSS nodes {:?} MB, NATS {:?} MB; {groups} group(s), {series} series",
            converged_after_ingest_ms,
            rss_node_loaded.iter().map(|b| b >> 20).collect::<Vec<_>>(),
            rss_nats.iter().map(|b| b >> 20).collect::<Vec<_>>(),
        ));

        let suite = Suite::new()?;
        let q = self.queries(&nodes, &token, &suite)?;
        let fresh = self.freshness(&nodes, &token)?;

        let catch_up = match setup {
            Setup::Embedded => Vec::new(),
            Setup::Nats(nats, n, interval) => {
                self.catch_ups(&mut nodes, nats, n, interval, &token, &suite, &q.reference)?
            }
        };
        let tenants = match setup {
            Setup::Nats(_, 1, _) if self.args.tenant_groups > 0 => {
                Some(self.tenants(&nodes[0], &token)?)
            }
            _ => None,
        };
        for node in &mut nodes {
            node.proc.kill9();
        }
        Ok(ConfigResult {
            label,
            nodes: n,
            nats_servers: nats_pids.len(),
            replicas: if nats_pids.is_empty() { 0 } else { n },
            snapshot_interval_seconds: interval,
            ready_empty_ms,
            token_visible_ms,
            ingest,
            counts_ok,
            converged_after_ingest_ms,
            stream_last_sequence,
            cpu_during_ingest,
            queries: q.rows,
            query_per_node: q.per_node,
            query_all: q.all,
            answers_compared: q.compared,
            answers_equal: q.equal,
            answer_mismatches: q.mismatches,
            same_as_embedded: None,
            reference: suite.bodies.iter().cloned().zip(q.reference).collect(),
            fresh_ack: fresh.ack.summary(),
            fresh_same_node: fresh.same.summary(),
            fresh_other_node: (n > 1).then(|| fresh.other.summary()),
            rss_node_idle,
            rss_node_loaded,
            rss_nats,
            groups,
            series,
            rss_per_group_bytes,
            catch_up,
            tenants,
        })
    }

    /// The catch-up measurements of a NATS configuration started with snapshot `interval`:
    /// - snapshots off (R1): the only node wiped, so it replays the whole stream;
    /// - snapshots off (R3): node 0 restarted with `--snapshot-interval-seconds` (it too replays
    ///   the whole stream: a node keeps no state of its own), then, once it has written a
    ///   snapshot, the last node wiped: it starts from that snapshot;
    /// - snapshots on from the start: the last node wiped once a snapshot covers the stream.
    #[allow(clippy::too_many_arguments)]
    fn catch_ups(
        &self,
        nodes: &mut [Node],
        nats: &NatsCluster,
        n: usize,
        interval: u64,
        token: &str,
        suite: &Suite,
        reference: &[Vec<u8>],
    ) -> anyhow::Result<Vec<CatchUp>> {
        let last = nodes.len() - 1;
        let mut out = Vec::new();
        if interval >= NO_SNAPSHOT_SECONDS && n == 1 {
            let ready = nodes[0].wipe_and_restart()?;
            let what = "data dir wiped; no snapshot ever written: whole stream replayed";
            out.push(catch_up(
                &nodes[0],
                0,
                what,
                ready,
                Duration::ZERO,
                token,
                suite,
                reference,
            )?);
            return Ok(out);
        }
        let wait = if interval >= NO_SNAPSHOT_SECONDS {
            let every = self.args.snapshot_interval_seconds;
            let ready = nodes[0].restart_with(&nats_args(nats, n, every))?;
            let what = format!(
                "SIGTERM, restarted with snapshots every {every} s; none yet: whole stream replayed"
            );
            out.push(catch_up(
                &nodes[0],
                0,
                &what,
                ready,
                Duration::ZERO,
                token,
                suite,
                reference,
            )?);
            await_snapshot(&nodes[..1], Duration::from_secs(every))?
        } else {
            await_snapshot(nodes, Duration::from_secs(interval))?
        };
        let ready = nodes[last].wipe_and_restart()?;
        let what = "data dir wiped; started from the newest snapshot";
        out.push(catch_up(
            &nodes[last],
            last,
            what,
            ready,
            wait,
            token,
            suite,
            reference,
        )?);
        Ok(out)
    }

    /// Adds `--tenant-groups` groups of `--tenant-events` events each to `node` and divides its
    /// RSS growth by them. Group g gets the g-th run of consecutive events of the file's recent
    /// part (wrapping around), renamed into a group of its own: small tenants with whole
    /// sessions and real-time data.
    fn tenants(&self, node: &Node, token: &str) -> anyhow::Result<TenantMemory> {
        let (groups, per) = (self.args.tenant_groups, self.args.tenant_events);
        let text = std::fs::read_to_string(self.data_path)?;
        let recent: Vec<&str> = text
            .lines()
            .skip(self.data.history_lines as usize)
            .collect();
        if recent.is_empty() {
            bail!("no recent events to copy into small groups");
        }
        let from = format!("\"group\":\"{GROUP}\"");
        let mut ndjson = String::new();
        for g in 0..groups {
            let to = format!("\"group\":\"bench-tenant-{g:04}\"");
            for k in 0..per {
                ndjson.push_str(&recent[(g * per + k) % recent.len()].replace(&from, &to));
                ndjson.push('\n');
            }
        }
        drop(text);
        let batches = data::read_batches(&mut ndjson.as_bytes(), u64::MAX, self.args.batch_size)?;
        drop(ndjson);
        let target = IngestTarget {
            url: format!("{}/ingest/v1/events", node.url),
            headers: vec![
                ("Authorization".into(), format!("Bearer {token}")),
                ("Content-Type".into(), "application/x-ndjson".into()),
            ],
            ocp_answer: true,
        };
        std::thread::sleep(SETTLE);
        let groups_before = node.metric("ocp_metrics_groups")?;
        let rss_before_bytes = node.proc.rss_bytes();
        let run = http::ingest(&target, &batches, self.args.producers, self.args.batch_size)?;
        std::thread::sleep(SETTLE);
        let rss_after_bytes = node.proc.rss_bytes();
        let groups_after = node.metric("ocp_metrics_groups")?;
        let added = (groups_after - groups_before).max(1.0);
        let t = TenantMemory {
            groups_added: groups,
            events_per_group: per,
            events_per_second: run.events_per_second,
            accepted: run.accepted,
            rejected: run.rejected,
            groups_before,
            groups_after,
            rss_before_bytes,
            rss_after_bytes,
            rss_per_group_bytes: rss_after_bytes.saturating_sub(rss_before_bytes) as f64 / added,
        };
        say(format!(
            "{groups} groups of {per} events: {} accepted, {} rejected; groups {groups_before} -> {groups_after}; RSS {} -> {} MB = {:.0} KB per group",
            t.accepted,
            t.rejected,
            rss_before_bytes >> 20,
            rss_after_bytes >> 20,
            t.rss_per_group_bytes / 1024.0
        ));
        Ok(t)
    }

    /// Sends the whole data file, producers spread round-robin over the nodes, while metering
    /// the CPU of every process.
    fn ingest(
        &self,
        nodes: &[Node],
        nats_pids: &[u32],
        token: &str,
    ) -> anyhow::Result<(IngestRun, Vec<CpuUse>)> {
        let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(self.data_path)?);
        let batches = data::read_batches(&mut reader, u64::MAX, self.args.batch_size)?;
        let targets: Vec<IngestTarget> = nodes
            .iter()
            .map(|n| IngestTarget {
                url: format!("{}/ingest/v1/events", n.url),
                headers: vec![
                    ("Authorization".into(), format!("Bearer {token}")),
                    ("Content-Type".into(), "application/x-ndjson".into()),
                ],
                ocp_answer: true,
            })
            .collect();
        let mut named: Vec<(String, u32)> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("ocp-metrics node {i}"), n.proc.pid()))
            .collect();
        named.extend(
            nats_pids
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("nats-server {i}"), *p)),
        );
        let pids: Vec<u32> = named.iter().map(|(_, p)| *p).collect();
        procs::wait_quiet(&pids, "ingest");
        let meter = CpuMeter::start(named);
        let run = http::ingest_spread(
            &targets,
            &batches,
            self.args.producers,
            self.args.batch_size,
        )?;
        let cpu = meter.finish();
        say(format!(
            "ingest: {} events in {:.1} s = {:.0} ev/s; ack p50 {:.1} ms p99 {:.1} ms; {} accepted, {} duplicates, {} rejected, {} retried; CPU {}",
            run.events,
            run.seconds,
            run.events_per_second,
            run.latency.p50,
            run.latency.p99,
            run.accepted,
            run.duplicates,
            run.rejected,
            run.retried,
            cpu.iter()
                .map(|c| format!("{} {:.2}", c.process, c.cores))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Ok((run, cpu))
    }

    /// Whether every event was answered, the distinct ones accepted and nothing refused. A
    /// request answered 503 and sent again may have been stored the first time: its events are
    /// then answered as duplicates, so with retries fewer may be accepted (the answers compared
    /// with the embedded node's say whether any was lost).
    fn counts_ok(&self, label: &str, run: &IngestRun) -> bool {
        let accepted_ok = run.accepted == self.data.unique
            || (run.retried > 0 && run.accepted <= self.data.unique);
        let ok = run.events == self.data.lines
            && accepted_ok
            && run.accepted + run.duplicates == run.events
            && run.rejected == 0;
        if !ok || run.accepted != self.data.unique {
            eprintln!(
                "  {label}: {} sent, {} accepted, {} duplicates, {} rejected; expected {} distinct of {}",
                run.events,
                run.accepted,
                run.duplicates,
                run.rejected,
                self.data.unique,
                self.data.lines
            );
        }
        ok
    }

    /// The suite on every node: node 0's answers are the reference each other node's must
    /// equal byte for byte; then `iterations` timed runs of each query on each node.
    fn queries(&self, nodes: &[Node], token: &str, suite: &Suite) -> anyhow::Result<Queries> {
        let pids: Vec<u32> = nodes.iter().map(|n| n.proc.pid()).collect();
        procs::wait_quiet(&pids, "queries");
        let agent = http::agent();
        let mut reference = Vec::new();
        for (spec, body) in suite.iter() {
            reference.push(nodes[0].query(&agent, token, spec.path(), body)?.0);
        }
        let (mut compared, mut equal, mut mismatches) = (0, 0, Vec::new());
        for (i, node) in nodes.iter().enumerate().skip(1) {
            for ((spec, body), want) in suite.iter().zip(&reference) {
                let (got, _) = node.query(&agent, token, spec.path(), body)?;
                compared += 1;
                if &got == want {
                    equal += 1;
                } else {
                    mismatches.push(format!("node {i}: {}", spec.name));
                }
            }
        }
        let mut rows = Vec::new();
        let mut per_node = vec![Latencies::default(); nodes.len()];
        let mut all = Latencies::default();
        for (spec, body) in suite.iter() {
            let mut row = Vec::new();
            let mut pooled = Latencies::default();
            for (i, node) in nodes.iter().enumerate() {
                let mut lat = Latencies::default();
                for _ in 0..self.args.iterations {
                    lat.push(node.query(&agent, token, spec.path(), body)?.1);
                }
                row.push(lat.summary());
                pooled.extend(lat.clone());
                per_node[i].extend(lat.clone());
                all.extend(lat);
            }
            rows.push(QueryRow {
                name: spec.name,
                per_node: row,
                pooled: pooled.summary(),
            });
        }
        let all = all.summary();
        say(format!(
            "queries: p50 {:.2} ms p99 {:.2} ms over {} runs; {equal} of {compared} answers equal to node 0's",
            all.p50, all.p99, all.n
        ));
        for m in &mismatches {
            eprintln!("  answer differs from node 0's: {m}");
        }
        Ok(Queries {
            reference,
            rows,
            per_node: per_node.iter().map(Latencies::summary).collect(),
            all,
            compared,
            equal,
            mismatches,
        })
    }

    /// `--probes` probes, the writer moving round-robin over the nodes; each is polled on the
    /// writer and (with several nodes) on the next node.
    fn freshness(&self, nodes: &[Node], token: &str) -> anyhow::Result<Fresh> {
        let mut f = Fresh::default();
        for k in 0..self.args.probes {
            let w = k % nodes.len();
            let mut readers = vec![&nodes[w]];
            if nodes.len() > 1 {
                readers.push(&nodes[(w + 1) % nodes.len()]);
            }
            let n = (k as u64) + 1_000_000 * nodes.len() as u64;
            let (ack, visible) = node::probe(&nodes[w], &readers, token, self.run_id, n)?;
            f.ack.push(ack);
            f.same.push(visible[0]);
            if let Some(other) = visible.get(1) {
                f.other.push(*other);
            }
        }
        let (same, other) = (f.same.summary(), f.other.summary());
        say(format!(
            "freshness: visible on the writer after {:.1} ms, on another node after {:.1} ms (medians; 0 with one node)",
            same.p50, other.p50
        ));
        Ok(f)
    }
}

/// What the query phase found.
struct Queries {
    /// Node 0's answers, in suite order.
    reference: Vec<Vec<u8>>,
    rows: Vec<QueryRow>,
    per_node: Vec<Summary>,
    all: Summary,
    compared: usize,
    equal: usize,
    mismatches: Vec<String>,
}

/// Freshness samples.
#[derive(Default)]
struct Fresh {
    ack: Latencies,
    same: Latencies,
    other: Latencies,
}

/// Waits until every node has applied the whole stream (the same last sequence everywhere,
/// no lag); returns that sequence (0 in embedded mode, which has no stream).
fn converge(nodes: &[Node], setup: Setup) -> anyhow::Result<f64> {
    if matches!(setup, Setup::Embedded) {
        return Ok(0.0);
    }
    let started = Instant::now();
    // Per node: the applied sequence last seen, and since when.
    let mut moved: Vec<(f64, Instant)> = vec![(-1.0, started); nodes.len()];
    loop {
        let mut applied = Vec::new();
        let mut lagging = false;
        for (i, node) in nodes.iter().enumerate() {
            let m = node.metrics()?;
            let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
            let (a, end) = (
                get("ocp_metrics_cluster_applied_sequence"),
                get("ocp_metrics_cluster_stream_last_sequence"),
            );
            let behind = get("ocp_metrics_cluster_consumer_lag") > 0.0 || a < end;
            if a != moved[i].0 {
                moved[i] = (a, Instant::now());
            } else if behind && moved[i].1.elapsed() > STUCK_AFTER {
                bail!(
                    "node {i} stopped applying at sequence {a} of {end} for {STUCK_AFTER:?} (see its log: a stream purged behind snapshots past it?)"
                );
            }
            applied.push(a);
            lagging |= behind;
        }
        if !lagging && applied.iter().all(|a| *a == applied[0]) {
            return Ok(applied[0]);
        }
        if started.elapsed() > CONVERGE_DEADLINE {
            bail!("the nodes did not converge within {CONVERGE_DEADLINE:?}: applied {applied:?}");
        }
        std::thread::sleep(POLL);
    }
}

/// Waits for a snapshot that covers the stream as it is now: until some node writes one, then
/// one more interval (with the jitter's fifth), because the first may have begun before the
/// last events and the next one then covers them. Returns the time waited.
fn await_snapshot(nodes: &[Node], interval: Duration) -> anyhow::Result<Duration> {
    let written = |nodes: &[Node]| -> anyhow::Result<f64> {
        let mut total = 0.0;
        for n in nodes {
            total += n.metric("ocp_metrics_cluster_snapshots_written_total")?;
        }
        Ok(total)
    };
    let started = Instant::now();
    let before = written(nodes)?;
    let deadline = interval * 10 + CONVERGE_DEADLINE;
    while written(nodes)? <= before {
        if started.elapsed() > deadline {
            bail!("no snapshot written within {deadline:?}");
        }
        std::thread::sleep(POLL);
    }
    std::thread::sleep(interval.mul_f64(1.3));
    say(format!(
        "snapshot written; waited {:.1} s in all",
        started.elapsed().as_secs_f64()
    ));
    Ok(started.elapsed())
}

/// Measures how node `i`, just started (`ready` from spawn to `/readyz` 200) after `what`,
/// caught up; its answers must equal node 0's from before (`reference`).
#[allow(clippy::too_many_arguments)]
fn catch_up(
    node: &Node,
    i: usize,
    what: &str,
    ready: Duration,
    snapshot_wait: Duration,
    token: &str,
    suite: &Suite,
    reference: &[Vec<u8>],
) -> anyhow::Result<CatchUp> {
    let m = node.metrics()?;
    let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
    let catch_up_seconds = get("ocp_metrics_cluster_catch_up_seconds");
    let start_sequence = get("ocp_metrics_cluster_start_sequence");
    let stream_last_sequence = get("ocp_metrics_cluster_stream_last_sequence");
    let replayed_events = (stream_last_sequence - start_sequence).max(0.0);
    let replay_events_per_second = if catch_up_seconds > 0.0 {
        replayed_events / catch_up_seconds
    } else {
        0.0
    };
    let agent = http::agent();
    let mut answers_equal = true;
    for ((spec, body), want) in suite.iter().zip(reference) {
        let (got, _) = node.query(&agent, token, spec.path(), body)?;
        if &got != want {
            eprintln!(
                "  node {i} after \"{what}\" answers {} differently",
                spec.name
            );
            answers_equal = false;
        }
    }
    std::thread::sleep(SETTLE);
    let rss_after_bytes = node.proc.rss_bytes();
    let k = CatchUp {
        node: i,
        what: what.to_string(),
        ready_ms: ms(ready),
        catch_up_seconds,
        start_sequence,
        stream_last_sequence,
        replayed_events,
        replay_events_per_second,
        seconds_per_million_events: if replayed_events > 0.0 {
            catch_up_seconds * 1e6 / replayed_events
        } else {
            0.0
        },
        snapshot_wait_seconds: snapshot_wait.as_secs_f64(),
        rss_after_bytes,
        answers_equal,
    };
    say(format!(
        "node {i}, {what}: ready in {:.0} ms; catch-up {:.2} s from snapshot sequence {} of {} ({:.0} events/s replayed); RSS {} MB; answers equal: {answers_equal}",
        k.ready_ms,
        k.catch_up_seconds,
        k.start_sequence,
        k.stream_last_sequence,
        k.replay_events_per_second,
        k.rss_after_bytes >> 20
    ));
    Ok(k)
}

/// The CPU time of named processes (and of this one, the load client) over a phase.
struct CpuMeter {
    named: Vec<(String, u32)>,
    start: Vec<u64>,
    client0: u64,
    total0: u64,
    busy0: u64,
}

impl CpuMeter {
    fn start(named: Vec<(String, u32)>) -> CpuMeter {
        let start = named
            .iter()
            .map(|(_, p)| stats::process_jiffies(*p))
            .collect();
        let (total0, busy0) = stats::cpu_jiffies();
        CpuMeter {
            named,
            start,
            client0: stats::process_jiffies(0),
            total0,
            busy0,
        }
    }

    /// Cores each process used on average, then the bench client's, then everything else's.
    fn finish(self) -> Vec<CpuUse> {
        let (total, busy) = stats::cpu_jiffies();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let dt = total.saturating_sub(self.total0).max(1) as f64;
        let share = |j: u64| j as f64 / dt * cores;
        let mut out = Vec::new();
        let mut ours = 0;
        for ((name, pid), j0) in self.named.iter().zip(&self.start) {
            let j = stats::process_jiffies(*pid).saturating_sub(*j0);
            ours += j;
            out.push(CpuUse {
                process: name.clone(),
                cores: share(j),
            });
        }
        let client = stats::process_jiffies(0).saturating_sub(self.client0);
        ours += client;
        out.push(CpuUse {
            process: "bench client".into(),
            cores: share(client),
        });
        out.push(CpuUse {
            process: "other processes".into(),
            cores: share(busy.saturating_sub(self.busy0).saturating_sub(ours)),
        });
        out
    }
}

/// The `serve` arguments of a node of `n` on `nats` (stream replicas = `n`).
fn nats_args(nats: &NatsCluster, n: usize, snapshot_interval_seconds: u64) -> Vec<String> {
    vec![
        "--nats".into(),
        nats.urls().join(","),
        "--nats-replicas".into(),
        n.to_string(),
        "--snapshot-interval-seconds".into(),
        snapshot_interval_seconds.to_string(),
    ]
}

fn version(bin: &Path) -> String {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn nats_version() -> String {
    std::process::Command::new(ocp_metrics_cluster::testing::nats_server_binary())
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
