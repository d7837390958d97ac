//! Shared helpers for the cluster tests: events and connections.

use ocp_metrics_cluster::testing::NatsCluster;
use ocp_metrics_cluster::{ClusterError, NatsOptions};
use ocp_metrics_core::event::{Counts, DialogEnd, EventKind, Outcome};
use ocp_metrics_core::{Event, GroupName, Label};
use std::time::{Duration, Instant};

/// The arrival time stamped on test events (2025-11-24T12:00:00Z).
pub const ARRIVAL_MS: i64 = 1_763_985_600_000;

/// A client connected to every server of `cluster` (it fails over between them).
#[allow(dead_code)] // Not every test binary uses every helper.
pub async fn connect(cluster: &NatsCluster) -> async_nats::Client {
    connect_to(cluster.urls()).await
}

pub async fn connect_to(urls: Vec<String>) -> async_nats::Client {
    NatsOptions::from_lookup(&urls.join(","), "ocpm-test", |_| None)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Events `ids` of a group whose name needs a hashed subject token, alternating between a
/// plain start event and a dialog end with every field set.
#[allow(dead_code)]
pub fn events(ids: std::ops::Range<usize>) -> Vec<Event> {
    let label = |s: &str| Label::parse(s).unwrap();
    ids.map(|i| Event {
        id: format!("ev-{i:06}").into(),
        group: GroupName::parse(if i % 3 == 0 { "acme" } else { "acme eu.*" }).unwrap(),
        session_id: label(&format!("s-{}", i / 4)),
        channel: label("ivr"),
        region: label("eu"),
        test: false,
        time: ARRIVAL_MS - 60_000 + i as i64,
        kind: if i % 2 == 0 {
            EventKind::DialogStart
        } else {
            EventKind::DialogEnd(Box::new(DialogEnd {
                started_at: ARRIVAL_MS - 120_000,
                flow_name: label("billing"),
                flow_id: label("f-1"),
                flow_type: label("voice"),
                locale: label("en-GB"),
                root: true,
                outcome: Outcome::Terminated,
                counts: Counts {
                    agent_requests: 1,
                    ..Counts::default()
                },
            }))
        },
    })
    .collect()
}

/// How long an operation is retried after a failover: a new stream leader is elected in
/// seconds; the rest is headroom for a loaded machine.
#[allow(dead_code)]
pub const RETRY_DEADLINE_MS: u64 = 60_000;

/// Retries `op` while it fails with `Unavailable`, as a node does after a failover (the new
/// stream leader may take seconds to answer).
#[allow(dead_code)]
pub async fn retry<T, F: std::future::Future<Output = Result<T, ClusterError>>>(
    what: &str,
    op: impl Fn() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_millis(RETRY_DEADLINE_MS);
    loop {
        match op().await {
            Ok(v) => return v,
            Err(ClusterError::Unavailable(e)) if Instant::now() < deadline => {
                eprintln!("{what}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}
