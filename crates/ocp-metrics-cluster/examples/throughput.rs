//! Publish and ordered-read rates of the event stream on real nats-servers started on loopback:
//! R1 on one server and R3 on three. Prints a table; asserts nothing about time.
//!
//! ```text
//! cargo run -p ocp-metrics-cluster --features testing --example throughput [EVENTS]
//! ```
//!
//! One producer publishes EVENTS events (default 20,000) in batches of 1,000, each batch sent
//! whole and then every ack awaited, as an ingest request would. The stream is then read from
//! sequence 1 twice each way, alternating: with the crate's reader (an ordered pull consumer)
//! and with async-nats's ordered push consumer, the alternative it was chosen over. Every process (the servers and this one) shares the
//! same cores, so the numbers are a floor for a real deployment, not a ceiling.

use async_nats::jetstream::consumer::{DeliverPolicy, push};
use futures_util::StreamExt;
use ocp_metrics_cluster::stream::STREAM_NAME;
use ocp_metrics_cluster::testing::NatsCluster;
use ocp_metrics_cluster::{EventStream, NatsOptions, StreamSettings, record};
use ocp_metrics_core::event::EventKind;
use ocp_metrics_core::{Event, GroupName, Label};
use std::time::Instant;

/// Events per publish call, like one ingest request.
const BATCH_EVENTS: usize = 1_000;

#[tokio::main]
async fn main() {
    let total: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("EVENTS is a number"))
        .unwrap_or(20_000);
    let events = events(total);
    println!(
        "{total} events of ~{} bytes, batches of {BATCH_EVENTS}, {} cores",
        record::encode(0, &events[0]).len(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| setup | publish events/s | ordered push read events/s (1st / 2nd) | ordered pull read events/s (1st / 2nd) |"
    );
    println!("|---|---|---|---|");
    for (label, servers) in [("R1, 1 server", 1), ("R3, 3 servers", 3)] {
        let cluster = NatsCluster::start(servers).await;
        let client = NatsOptions::from_lookup(&cluster.urls().join(","), "bench", |_| None)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let stream = EventStream::open(client.clone(), &StreamSettings { replicas: servers })
            .await
            .unwrap();

        let start = Instant::now();
        for batch in events.chunks(BATCH_EVENTS) {
            for r in stream.publish(1_764_000_000_000, batch).await {
                r.expect("publish acknowledged");
            }
        }
        let publish = rate(total, start);

        // Each read twice, alternating, so that neither profits alone from a warm server cache.
        let mut push = Vec::new();
        let mut pull = Vec::new();
        for _ in 0..2 {
            push.push(read_push(&client, total).await);
            pull.push(read_pull(&stream, total).await);
        }
        println!(
            "| {label} | {publish:.0} | {:.0} / {:.0} | {:.0} / {:.0} |",
            push[0], push[1], pull[0], pull[1]
        );
    }
}

/// Reads `total` events with the crate's reader (an ordered pull consumer).
async fn read_pull(stream: &EventStream, total: usize) -> f64 {
    let start = Instant::now();
    let mut reader = stream.read_from(1).await.unwrap();
    for _ in 0..total {
        reader.next().await.unwrap();
    }
    rate(total, start)
}

/// Reads and decodes `total` events with async-nats's ordered push consumer, the alternative.
async fn read_push(client: &async_nats::Client, total: usize) -> f64 {
    let start = Instant::now();
    let js = async_nats::jetstream::new(client.clone());
    let consumer = js
        .get_stream(STREAM_NAME)
        .await
        .unwrap()
        .create_consumer(push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    for _ in 0..total {
        let m = messages.next().await.unwrap().unwrap();
        record::decode(&m.payload).unwrap();
    }
    rate(total, start)
}

fn rate(n: usize, start: Instant) -> f64 {
    n as f64 / start.elapsed().as_secs_f64()
}

fn events(n: usize) -> Vec<Event> {
    let label = |s: &str| Label::parse(s).unwrap();
    (0..n)
        .map(|i| Event {
            id: format!("bench-{i:08}").into(),
            group: GroupName::parse(&format!("tenant-{}", i % 10)).unwrap(),
            session_id: label(&format!("session-{}", i / 6)),
            channel: label("ivr"),
            region: label("eu-west"),
            test: false,
            time: 1_764_000_000_000 + i as i64,
            kind: match i % 3 {
                0 => EventKind::SessionStart,
                1 => EventKind::DialogStart,
                _ => EventKind::SessionEnd {
                    started_at: 1_763_999_990_000,
                },
            },
        })
        .collect()
}
