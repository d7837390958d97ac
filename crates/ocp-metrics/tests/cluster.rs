//! Cluster mode, end to end: three `nats-server`s as one JetStream cluster on loopback and three
//! `ocp-metrics serve --nats` nodes, all real processes. Producers ingest through every node
//! while one node and one NATS server are killed with SIGKILL and restarted; a producer whose
//! request failed retries it on the next node. Then every node must answer every query exactly
//! as a from-scratch recomputation of the acknowledged events (what the embedded mode answers
//! for them): nothing lost, nothing counted twice, and the same on every node. A node started
//! on a wiped data dir must catch up before it reports ready.
//!
//! Six processes share two cores: every wait polls with a generous deadline.

mod reliability;
mod support;

use ocp_metrics_cluster::testing::NatsCluster;
use ocp_metrics_core::Endpoint;
use ocp_metrics_warehouse::testing::TestClickHouse;
use reliability::{
    Batching, Line, Proc, Rng, Target, compare_all, deliver, generate, into_requests, post,
};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Nodes and NATS servers.
const NODES: usize = 3;
/// How long the cluster may take to agree after the last acknowledged request: the contract
/// says 1 s on a healthy cluster; the rest is headroom for six processes on two cores.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(60);
/// How long a credential change may take to reach every node: the contract says 1 s; the
/// test allows more for six processes on two cores, and prints what it measured.
const CREDENTIALS_DEADLINE: Duration = Duration::from_secs(5);
/// Batches node A ingests while node B is cut off, at most, waiting for its purges to pass B.
const BATCHES_WHILE_CUT_OFF_MAX: usize = 6;
/// How long one request may go unacknowledged across retries (a NATS failover takes seconds).
const REQUEST_DEADLINE: Duration = Duration::from_secs(120);
/// The pause before a producer retries a request on the next node.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// The nodes' base URLs and the token each accepts, shared with the producers (a restarted
/// node listens on a new port).
#[derive(Debug, Default)]
struct Targets {
    urls: Vec<String>,
    tokens: Vec<String>,
}

#[derive(Debug, Default)]
struct Tally {
    answered_requests: AtomicU64,
    failed_attempts: AtomicU64,
    /// Events answered `accepted` over all 200s: each event at most once.
    accepted: AtomicU64,
}

fn node_args(urls: &str) -> Vec<String> {
    [
        "--nats",
        urls,
        "--nats-replicas",
        "3",
        "--snapshot-interval-seconds",
        "3",
    ]
    .map(String::from)
    .to_vec()
}

/// Posts each request, starting at node `first`, moving to the next node after every failure,
/// until one answers 200; then records the valid events as acknowledged.
fn produce(
    first: usize,
    requests: Vec<Vec<Line>>,
    targets: Arc<RwLock<Targets>>,
    acked: Arc<Mutex<BTreeSet<String>>>,
    tally: Arc<Tally>,
    pace: Duration,
) {
    // Both the choice of a node and the move past one that failed use it.
    let node = std::cell::Cell::new(first);
    for request in requests {
        let next = || {
            let t = targets.read().unwrap();
            let (url, token) = (t.urls[node.get()].clone(), t.tokens[node.get()].clone());
            Target { url, token }
        };
        let failed = |outcome: Option<(u16, &str)>| {
            if let Some((status, text)) = outcome {
                assert!(
                    status == 503 || status == 429 || status == 401,
                    "unexpected {status}: {text}"
                );
            }
            tally.failed_attempts.fetch_add(1, Ordering::Relaxed);
            node.set((node.get() + 1) % NODES);
        };
        let answer = deliver(
            &request,
            &acked,
            (REQUEST_DEADLINE, RETRY_PAUSE),
            next,
            failed,
        );
        tally
            .accepted
            .fetch_add(answer["accepted"].as_u64().unwrap(), Ordering::Relaxed);
        tally.answered_requests.fetch_add(1, Ordering::SeqCst);
        node.set((node.get() + 1) % NODES);
        std::thread::sleep(pace);
    }
}

/// Waits until `node` answers every query like the recomputation of `lines`.
fn converges(node: &Proc, token: &str, lines: &[&str]) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        match compare_all(node, token, lines) {
            Ok(_) => return Ok(started.elapsed()),
            Err(e) if started.elapsed() > CONVERGE_DEADLINE => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// A node's log lines other than access and info lines, for failure messages.
fn warnings(node: &Proc) -> String {
    node.log()
        .lines()
        .filter(|l| !l.contains("ocp_metrics::access") && !l.contains("INFO"))
        .take(60)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The log lines about snapshots of every node, for failure messages.
fn snapshot_log_lines(nodes: &[Proc]) -> String {
    nodes
        .iter()
        .flat_map(|n| {
            n.log()
                .lines()
                .filter(|l| l.contains("snapshot"))
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The status of an authenticated catalog request to `node` with `token`: 200 or 401.
fn auth_status(node: &Proc, token: &str) -> u16 {
    let answer = ureq::get(&format!("{}/api/v1/catalog", node.base_url))
        .set("Authorization", &format!("Bearer {token}"))
        .call();
    match answer {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(status, _)) => status,
        Err(e) => panic!("catalog request: {e}"),
    }
}

/// A token created through node 1 works on every node, and once revoked through node 2 is
/// refused by every node, each within [`CREDENTIALS_DEADLINE`].
fn credentials_are_the_clusters(nodes: &[Proc]) {
    let body = serde_json::json!({"name": "shared", "groups": ["acme"], "scopes": ["metrics:read"], "expires_at": null});
    let (status, text) = post(
        &format!("{}/admin/v1/tokens", nodes[1].base_url),
        Some(reliability::ADMIN_TOKEN),
        "application/json",
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 201, "{text}");
    let created: Value = serde_json::from_str(&text).unwrap();
    let token = created["token"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    let started = Instant::now();
    for node in nodes {
        wait_until(
            "a new token accepted on every node",
            CREDENTIALS_DEADLINE,
            || auth_status(node, token) == 200,
        );
    }
    let created_everywhere = started.elapsed();
    let revoked = ureq::delete(&format!("{}/admin/v1/tokens/{id}", nodes[2].base_url))
        .set(
            "Authorization",
            &format!("Bearer {}", reliability::ADMIN_TOKEN),
        )
        .call()
        .expect("revoke");
    assert_eq!(revoked.status(), 204);
    let started = Instant::now();
    for node in nodes {
        wait_until(
            "a revoked token refused on every node",
            CREDENTIALS_DEADLINE,
            || auth_status(node, token) == 401,
        );
    }
    eprintln!(
        "cluster test: a token created on node 1 worked on all nodes after {created_everywhere:?}; revoked on node 2, refused everywhere after {:?}",
        started.elapsed()
    );
}

fn wait_until(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < deadline,
            "{what}: not within {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn three_nodes_on_three_nats_servers_lose_nothing_and_count_nothing_twice_through_kills() {
    through_kills(None);
}

/// The same with the batch history in ClickHouse, which is also killed for
/// [`CLICKHOUSE_OUTAGE`] under ingest: batch queries answer 503 with `Retry-After` meanwhile,
/// and afterwards every batch answer equals the embedded mode's (the recomputation).
#[test]
fn the_same_with_the_batch_history_in_clickhouse_killed_and_restarted_under_ingest() {
    through_kills(Some(TestClickHouse::start()));
}

/// How long ClickHouse stays down under ingest in the ClickHouse variant.
const CLICKHOUSE_OUTAGE: Duration = Duration::from_secs(20);
/// The pause after each request in the ClickHouse variant, so that ingest goes on for longer
/// than the outage (about 60 requests per producer).
const CLICKHOUSE_VARIANT_PACE: Duration = Duration::from_millis(600);

/// The nodes' arguments for the ClickHouse variant.
fn clickhouse_args(ch: &TestClickHouse) -> Vec<String> {
    vec![
        "--clickhouse-url".into(),
        ch.url(),
        "--clickhouse-database".into(),
        "cluster_test".into(),
    ]
}

/// The sum of one metric over the nodes.
fn total(nodes: &[Proc], name: &str) -> f64 {
    nodes
        .iter()
        .map(|n| n.metrics().get(name).copied().unwrap_or(0.0))
        .sum()
}

/// A batch query's status and `Retry-After` on `node`.
fn batch_query_status(node: &Proc, token: &str) -> Option<(u16, Option<String>)> {
    let (endpoint, query) = reliability::all_queries(&["acme"])
        .into_iter()
        .find(|(e, _)| !e.family().is_realtime())
        .expect("a batch query");
    let url = format!("{}{}", node.base_url, endpoint.path());
    post_with_headers(&url, token, "application/json", &query.to_string())
        .map(|a| (a.status, a.retry_after))
}

fn through_kills(mut clickhouse: Option<TestClickHouse>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut nats = rt.block_on(NatsCluster::start(NODES));
    let mut args = node_args(&nats.urls().join(","));
    args.extend(clickhouse.as_ref().map(clickhouse_args).unwrap_or_default());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let root = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Proc> = (0..NODES)
        .map(|i| {
            let data = root.path().join(format!("data-{i}"));
            let logs = root.path().join(format!("logs-{i}"));
            std::fs::create_dir_all(&logs).unwrap();
            Proc::new(&data, &logs, &args)
        })
        .collect();
    let targets = Arc::new(RwLock::new(Targets::default()));
    for node in &mut nodes {
        let url = node.start_ready();
        targets.write().unwrap().urls.push(url);
    }
    // One token, created through node 0, is the producers' token on every node.
    let token = nodes[0].create_token();
    for node in &nodes {
        wait_until(
            "node 0's token works everywhere",
            CREDENTIALS_DEADLINE,
            || auth_status(node, &token) == 200,
        );
    }
    targets.write().unwrap().tokens = vec![token.clone(); NODES];
    credentials_are_the_clusters(&nodes);

    let mut rng = Rng(7);
    let lines = generate(&mut rng, 500, "c");
    let valid: BTreeSet<String> = lines
        .iter()
        .filter(|l| l.valid)
        .map(|l| l.json.clone())
        .collect();
    // Requests of 1 to 100 events, with resends of earlier requests (the producer's own
    // retries).
    let batching = Batching {
        events_max: 100,
        repeats_within: false,
    };
    let requests = into_requests(&mut rng, &lines, batching);
    let total_requests = requests.len() as u64;
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let tally = Arc::new(Tally::default());
    let halves: Vec<Vec<Vec<Line>>> = {
        let mid = requests.len() / 2;
        let mut second = requests;
        let first = second.drain(..mid).collect();
        vec![first, second]
    };
    let pace = if clickhouse.is_some() {
        CLICKHOUSE_VARIANT_PACE
    } else {
        Duration::ZERO
    };
    let producers: Vec<_> = halves
        .into_iter()
        .enumerate()
        .map(|(p, requests)| {
            let (targets, acked, tally) = (targets.clone(), acked.clone(), tally.clone());
            std::thread::spawn(move || produce(p, requests, targets, acked, tally, pace))
        })
        .collect();

    // Chaos while the producers run: SIGKILL node 1 a third of the way in, SIGKILL NATS server
    // 0 half way, then bring both back.
    let answered = || tally.answered_requests.load(Ordering::SeqCst);
    wait_until("a third answered", REQUEST_DEADLINE, || {
        answered() >= total_requests / 3
    });
    if let Some(ch) = &mut clickhouse {
        // Once a block is in ClickHouse, batch answers need it: they must wait for it, never
        // leave it out.
        wait_until("a batch block written", CONVERGE_DEADLINE, || {
            total(&nodes, "ocp_metrics_warehouse_blocks_written_total") > 0.0
        });
        ch.kill();
        let stopped = Instant::now();
        wait_until(
            "batch queries refused while ClickHouse is down",
            CONVERGE_DEADLINE,
            || {
                batch_query_status(&nodes[2], &token)
                    .is_some_and(|(status, retry)| status == 503 && retry.is_some())
            },
        );
        let before = answered();
        std::thread::sleep(CLICKHOUSE_OUTAGE.saturating_sub(stopped.elapsed()));
        assert!(
            answered() > before || answered() == total_requests,
            "ingest went on while ClickHouse was down"
        );
        ch.restart();
    }
    nodes[1].kill9();
    nats.kill(0);
    wait_until("two thirds answered", REQUEST_DEADLINE, || {
        answered() >= 2 * total_requests / 3
    });
    rt.block_on(nats.restart(0));
    let url = nodes[1].start_ready();
    targets.write().unwrap().urls[1] = url;
    for p in producers {
        p.join().expect("a producer failed");
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(
        acked, valid,
        "every valid event was acknowledged once the producers finished"
    );
    // A 503 may have kept some of a request's events (its retry answers them as duplicates),
    // so not every event is answered `accepted`; none may be answered so twice.
    let accepted = tally.accepted.load(Ordering::Relaxed);
    assert!(
        accepted <= valid.len() as u64 && accepted > 0,
        "{accepted} answered accepted for {} distinct events",
        valid.len()
    );
    let lines: Vec<&str> = acked.iter().map(String::as_str).collect();

    // Every node answers exactly the recomputation, once it has converged.
    let tokens = targets.read().unwrap().tokens.clone();
    for (i, node) in nodes.iter().enumerate() {
        if let Err(e) = converges(node, &tokens[i], &lines) {
            let m = node.metrics();
            panic!(
                "node {i} does not answer like the recomputation of the acknowledged events: {e}\napplied {:?} of {:?}, {:?} s since current, readyz {:?}\nwarnings:\n{}",
                m.get("ocp_metrics_cluster_applied_sequence"),
                m.get("ocp_metrics_cluster_stream_last_sequence"),
                m.get("ocp_metrics_cluster_seconds_since_current"),
                reliability::get(&format!("{}/readyz", node.base_url)),
                warnings(node)
            );
        }
    }

    // A node on a wiped data dir catches up (from a snapshot and the stream after it) before
    // it reports ready, and then answers the same.
    wait_until("a snapshot stored", CONVERGE_DEADLINE, || {
        nodes
            .iter()
            .any(|n| n.metrics()["ocp_metrics_cluster_snapshots_written_total"] > 0.0)
    });
    nodes[2].kill9();
    std::fs::remove_dir_all(&nodes[2].data).unwrap();
    let started = Instant::now();
    nodes[2].start_ready();
    let catch_up = started.elapsed();
    compare_all(&nodes[2], &token, &lines)
        .unwrap_or_else(|e| panic!("the wiped node, once ready: {e}"));
    let metrics = nodes[2].metrics();
    assert!(
        metrics["ocp_metrics_cluster_start_sequence"] > 0.0,
        "the wiped node started from a snapshot: {metrics:?}\nsnapshot lines of the nodes' logs:\n{}",
        snapshot_log_lines(&nodes)
    );
    if let Some(ch) = &clickhouse {
        let rows: u64 = ch
            .exec("SELECT count() FROM cluster_test.batch_slots")
            .trim()
            .parse()
            .unwrap();
        assert!(rows > 0, "the batch history went to ClickHouse");
    }
    eprintln!(
        "cluster test: {} events acknowledged, {} failed attempts retried, wiped node ready in {catch_up:?}",
        lines.len(),
        tally.failed_attempts.load(Ordering::Relaxed)
    );
}

/// One POST with the headers a cut-off node must set.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    stale_as_of: Option<String>,
}

fn post_with_headers(url: &str, token: &str, content_type: &str, body: &str) -> Option<Answer> {
    let result = ureq::post(url)
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", content_type)
        .timeout(Duration::from_secs(30))
        .send_string(body);
    let r = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(_) => return None,
    };
    Some(Answer {
        status: r.status(),
        retry_after: r.header("retry-after").map(String::from),
        stale_as_of: r.header("x-stale-data-as-of").map(String::from),
    })
}

#[test]
fn a_node_cut_off_from_nats_refuses_ingest_marks_answers_stale_and_reports_not_ready() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut nats = rt.block_on(NatsCluster::start(1));
    let root = tempfile::tempdir().unwrap();
    let args = [
        "--nats".to_string(),
        nats.url(0),
        "--nats-replicas".to_string(),
        "1".to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let logs = root.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut node = Proc::new(&root.path().join("data"), &logs, &args);
    node.start_ready();
    let token = node.create_token();
    let mut rng = Rng(3);
    let lines = generate(&mut rng, 20, "s");
    let valid: Vec<&str> = lines
        .iter()
        .filter(|l| l.valid)
        .map(|l| l.json.as_str())
        .collect();
    let body: String = valid.iter().map(|l| format!("{l}\n")).collect();
    let ingest_url = format!("{}/ingest/v1/events", node.base_url);
    let ingest = |body: &str| post_with_headers(&ingest_url, &token, "application/x-ndjson", body);
    assert_eq!(ingest(&body).map(|a| a.status), Some(200));
    let (endpoint, query) = reliability::all_queries(&["acme"]).remove(0);
    let query_url = format!("{}{}", node.base_url, endpoint.path());
    let ask = || post_with_headers(&query_url, &token, "application/json", &query.to_string());
    let current = ask().unwrap();
    assert_eq!(current.status, 200);
    assert_eq!(
        current.stale_as_of, None,
        "a current node's answer is not marked"
    );

    nats.kill(0);
    let one_more = format!(
        "{}\n",
        generate(&mut Rng(4), 1, "late")
            .iter()
            .find(|l| l.valid)
            .unwrap()
            .json
    );
    wait_until(
        "ingest refused while NATS is down",
        CONVERGE_DEADLINE,
        || ingest(&one_more).is_some_and(|a| a.status == 503 && a.retry_after.is_some()),
    );
    wait_until("answers marked stale", CONVERGE_DEADLINE, || {
        ask().is_some_and(|a| a.status == 200 && a.stale_as_of.is_some())
    });
    wait_until("not ready", CONVERGE_DEADLINE, || {
        reliability::get(&format!("{}/readyz", node.base_url)).is_ok_and(|(s, _)| s == 503)
    });
    compare_all(&node, &token, &valid).expect("a cut-off node still answers what it has");

    rt.block_on(nats.restart(0));
    wait_until("ready again", CONVERGE_DEADLINE, || {
        reliability::get(&format!("{}/readyz", node.base_url)).is_ok_and(|(s, _)| s == 200)
    });
    assert_eq!(ask().unwrap().stale_as_of, None, "current again");
    wait_until("ingest accepted again", CONVERGE_DEADLINE, || {
        ingest(&one_more).is_some_and(|a| a.status == 200)
    });
}

/// Ingests `lines` (valid and invalid) through `node` in one request, retried while it
/// answers 503 (a stream leader election), and returns the valid ones.
fn ingest_all(node: &Proc, token: &str, lines: &[Line]) -> Vec<String> {
    let body: String = lines.iter().map(|l| format!("{}\n", l.json)).collect();
    let started = Instant::now();
    loop {
        let answer = post(
            &format!("{}/ingest/v1/events", node.base_url),
            Some(token),
            "application/x-ndjson",
            body.as_bytes(),
        );
        match answer {
            Ok((200, _)) => break,
            Ok((503, _)) | Err(_) if started.elapsed() < REQUEST_DEADLINE => {
                std::thread::sleep(RETRY_PAUSE);
            }
            other => panic!("ingest: {other:?}"),
        }
    }
    lines
        .iter()
        .filter(|l| l.valid)
        .map(|l| l.json.clone())
        .collect()
}

/// The lines as `&str`s, as the comparisons take them.
fn strs(lines: &[String]) -> Vec<&str> {
    lines.iter().map(String::as_str).collect()
}

fn metric(node: &Proc, name: &str) -> f64 {
    node.metrics().get(name).copied().unwrap_or(0.0)
}

#[test]
fn a_node_cut_off_while_the_stream_is_purged_past_it_catches_up_completely() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut nats = rt.block_on(NatsCluster::start(NODES));
    let root = tempfile::tempdir().unwrap();
    let proc = |name: &str, args: &[String]| {
        let logs = root.path().join(format!("logs-{name}"));
        std::fs::create_dir_all(&logs).unwrap();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Proc::new(&root.path().join(format!("data-{name}")), &logs, &args)
    };
    // Node A knows every server, snapshots every second and purges as close to the stream's
    // end as it may; node B knows only server 2, so killing that server cuts B off alone.
    let a_args: Vec<String> = [
        "--nats",
        &nats.urls().join(","),
        "--nats-replicas",
        "3",
        "--snapshot-interval-seconds",
        "1",
        "--stream-keep-messages-min",
        "1",
    ]
    .map(String::from)
    .to_vec();
    let b_args: Vec<String> = [
        "--nats",
        &nats.url(2),
        "--nats-replicas",
        "3",
        "--snapshot-interval-seconds",
        "100000",
    ]
    .map(String::from)
    .to_vec();
    let mut a = proc("a", &a_args);
    let mut b = proc("b", &b_args);
    a.start_ready();
    b.start_ready();
    let token = a.create_token();
    wait_until("the token on node B", CREDENTIALS_DEADLINE, || {
        auth_status(&b, &token) == 200
    });
    let mut rng = Rng(11);
    let first = generate(&mut rng, 30, "p0");
    let mut valid = ingest_all(&a, &token, &first);
    converges(&b, &token, &strs(&valid)).expect("node B before the cut");
    let b_at = metric(&b, "ocp_metrics_cluster_applied_sequence");

    // While B is cut off, A ingests batch after batch and snapshots after each, until its
    // purges have dropped what B has not read.
    nats.kill(2);
    let purged_past_b = || metric(&a, "ocp_metrics_cluster_stream_first_sequence") > b_at + 1.0;
    for i in 1..=BATCHES_WHILE_CUT_OFF_MAX {
        if purged_past_b() {
            break;
        }
        let written = metric(&a, "ocp_metrics_cluster_snapshots_written_total");
        let batch = generate(&mut rng, 30, &format!("p{i}"));
        valid.extend(ingest_all(&a, &token, &batch));
        let started = Instant::now();
        while metric(&a, "ocp_metrics_cluster_snapshots_written_total") <= written {
            assert!(
                started.elapsed() < CONVERGE_DEADLINE,
                "node A stored no snapshot after batch {i} within {CONVERGE_DEADLINE:?}:\n{}\n{}",
                snapshot_log_lines(std::slice::from_ref(&a)),
                warnings(&a)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    wait_until(
        "the stream purged past node B",
        CONVERGE_DEADLINE,
        purged_past_b,
    );
    rt.block_on(nats.restart(2));
    if let Err(e) = converges(&b, &token, &strs(&valid)) {
        panic!("node B after the purge: {e}\nwarnings:\n{}", warnings(&b));
    }
    // How B got there depends on which server serves its new consumer: the stream leader
    // (purged: B loads the newest snapshot, `snapshot_reloads_total`) or server 2 before it has
    // replayed the purges (the same messages, read from its copy). Either way its answers are
    // complete, which is what this test requires.
    eprintln!(
        "purge test: node B took a snapshot {} time(s) to resume",
        metric(&b, "ocp_metrics_cluster_snapshot_reloads_total")
    );
}

/// Days of history the 720-day test spreads its sessions over (the batch retention is 720).
const HISTORY_DAYS: i64 = 718;

/// `generate`'s sessions moved back in time, session `s` of `n` by about `s * HISTORY_DAYS / n`
/// days, so that they cover the whole batch retention.
fn history(sessions: u64) -> Vec<String> {
    let lines = generate(&mut Rng(11), sessions, "h");
    let day_ms = 86_400_000;
    lines
        .iter()
        .filter(|l| l.valid)
        .map(|l| {
            let mut v: Value = serde_json::from_str(&l.json).unwrap();
            let session: i64 = v["session_id"].as_str().unwrap()["h-s".len()..]
                .parse()
                .unwrap();
            let shift = session * HISTORY_DAYS / sessions as i64 * day_ms;
            for field in ["time", "started_at"] {
                if let Some(t) = v[field].as_str() {
                    let t: jiff::Timestamp = t.parse().unwrap();
                    let moved =
                        jiff::Timestamp::from_millisecond(t.as_millisecond() - shift).unwrap();
                    v[field] = Value::String(moved.to_string());
                }
            }
            v.to_string()
        })
        .collect()
}

#[test]
fn a_720_day_batch_query_from_clickhouse_equals_the_embedded_answer() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let nats = rt.block_on(NatsCluster::start(1));
    let ch = TestClickHouse::start();
    let root = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--nats".to_string(),
        nats.url(0),
        "--nats-replicas".into(),
        "1".into(),
    ];
    args.extend(clickhouse_args(&ch));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let logs = root.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut node = Proc::new(&root.path().join("data"), &logs, &args);
    node.start_ready();
    let token = node.create_token();
    let lines = history(1_500);
    for chunk in lines.chunks(1_000) {
        let body: String = chunk.iter().map(|l| format!("{l}\n")).collect();
        let (status, text) = post(
            &format!("{}/ingest/v1/events", node.base_url),
            Some(&token),
            "application/x-ndjson",
            body.as_bytes(),
        )
        .unwrap();
        assert_eq!(status, 200, "{text}");
    }
    // The history's last block closes when the stream time enters a new window; then it is
    // written, and memory holds nothing of the history.
    std::thread::sleep(Duration::from_millis(2_500));
    let nudge = generate(&mut Rng(12), 1, "n").remove(0).json;
    let (status, _) = post(
        &format!("{}/ingest/v1/events", node.base_url),
        Some(&token),
        "application/x-ndjson",
        format!("{nudge}\n").as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 200);
    wait_until(
        "the history written to ClickHouse",
        CONVERGE_DEADLINE,
        || {
            node.metrics()["ocp_metrics_warehouse_pending_events"] == 0.0
                && node.metrics()["ocp_metrics_warehouse_blocks_written_total"] > 0.0
        },
    );
    let mut counted: Vec<&str> = lines.iter().map(String::as_str).collect();
    counted.push(&nudge);
    let rollups = reliability::recompute(&reliability::parse_events(counted.iter().copied()));
    let mut compared = 0;
    for endpoint in [
        Endpoint::V3BatchSessions,
        Endpoint::V3BatchDialogs,
        Endpoint::V3BatchMiniapps,
    ] {
        let dims = endpoint.family().dims();
        for (downsampling, timezone, drilldown) in [
            ("day", "Asia/Kathmandu", true),
            ("month", "America/New_York", false),
            ("week", "Asia/Kolkata", true),
            ("year", "UTC", false),
        ] {
            let body = serde_json::json!({
                "metrics": endpoint.metrics().iter().map(|m| m.name).collect::<Vec<_>>(),
                "filters": {dims[0]: [], "channel": []},
                "start": "2022/04/08 00:00:00",
                "end": "2024/03/27 06:00:00",
                "group": "acme",
                "downsampling": downsampling,
                "drilldown": drilldown,
                "timezone": timezone,
            });
            let want = reliability::expected_answer(&rollups, endpoint, &body);
            let (status, got) = post(
                &format!("{}{}", node.base_url, endpoint.path()),
                Some(&token),
                "application/json",
                body.to_string().as_bytes(),
            )
            .unwrap();
            assert_eq!(status, 200, "{got}");
            assert_eq!(got, want, "{} {body}", endpoint.path());
            compared += 1;
        }
    }
    let rows: u64 = ch
        .exec("SELECT count() FROM cluster_test.batch_slots")
        .trim()
        .parse()
        .unwrap();
    let slots: u64 = ch
        .exec("SELECT uniqExact(slot) FROM cluster_test.batch_slots")
        .trim()
        .parse()
        .unwrap();
    assert!(
        slots > 500,
        "the history spans the retention: {slots} distinct slots in {rows} rows"
    );
    eprintln!(
        "720-day test: {} events, {rows} rows over {slots} slots in ClickHouse, {compared} answers equal",
        lines.len()
    );
}
