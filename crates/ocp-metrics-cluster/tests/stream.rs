//! The event stream on a real three-server JetStream cluster (R3): publish, JetStream's
//! duplicate answer, ordered read-back, settings validation, and acknowledged events surviving
//! `kill -9` of the stream leader in the middle of publishing.

mod support;

use ocp_metrics_cluster::stream::{DUPLICATE_WINDOW_SECONDS, STREAM_NAME};
use ocp_metrics_cluster::testing::NatsCluster;
use ocp_metrics_cluster::{ClusterError, EventReader, EventStream, StreamEvent, StreamSettings};
use ocp_metrics_core::Event;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use support::{ARRIVAL_MS, RETRY_DEADLINE_MS, connect, events, retry};

const R3: StreamSettings = StreamSettings { replicas: 3 };

/// How long reading back may take: generous, six processes share two cores.
const READ_DEADLINE_MS: u64 = 60_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_answers_sequences_and_duplicates_and_reads_back_in_order() {
    let cluster = NatsCluster::start(3).await;
    let stream = EventStream::open(connect(&cluster).await, &R3)
        .await
        .unwrap();
    let sent = events(0..200);

    let acks = stream.publish(ARRIVAL_MS, &sent).await;
    let acks: Vec<_> = acks.into_iter().map(Result::unwrap).collect();
    for (i, ack) in acks.iter().enumerate() {
        assert_eq!(
            (ack.sequence, ack.duplicate),
            (i as u64 + 1, false),
            "event {i}"
        );
    }
    assert_eq!(stream.last_sequence().await.unwrap(), 200);

    // The same events again, as a producer's retry: JetStream answers duplicate with the
    // original sequences and stores nothing.
    let again = stream.publish(ARRIVAL_MS + 5_000, &sent[50..60]).await;
    for (i, ack) in again.into_iter().enumerate() {
        let ack = ack.unwrap();
        assert_eq!(
            (ack.sequence, ack.duplicate),
            (51 + i as u64, true),
            "retry {i}"
        );
    }
    assert_eq!(stream.last_sequence().await.unwrap(), 200);

    let all = read(&mut stream.read_from(1).await.unwrap(), 200).await;
    for (i, (got, want)) in all.iter().zip(&sent).enumerate() {
        assert_eq!(got.sequence, i as u64 + 1);
        assert_eq!(got.record.arrival_ms, ARRIVAL_MS);
        assert_eq!(&got.record.event, want);
    }
    let mut tail_reader = stream.read_from(151).await.unwrap();
    let tail = read(&mut tail_reader, 50).await;
    assert_eq!(tail[0].sequence, 151);
    assert_eq!(tail[0].record.event, sent[150]);

    // A reader at the end keeps following: an event published now is delivered next.
    let later = events(200..201);
    assert_eq!(
        stream.publish(ARRIVAL_MS, &later).await[0]
            .as_ref()
            .unwrap()
            .sequence,
        201
    );
    let followed = read(&mut tail_reader, 1).await;
    assert_eq!(
        (followed[0].sequence, &followed[0].record.event),
        (201, &later[0])
    );

    // Another node opening the stream validates it; one configured differently is refused
    // with what to do about it.
    EventStream::open(connect(&cluster).await, &R3)
        .await
        .unwrap();
    let err = EventStream::open(connect(&cluster).await, &StreamSettings { replicas: 1 })
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::Mismatch(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "JetStream stream `OCPM_EVENTS` exists with replicas 3, but this node is configured for 1; \
         start the node with the settings the cluster uses, or change the stream with the nats \
         CLI (`nats stream edit OCPM_EVENTS`)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_streams_duplicate_window_is_brought_to_the_nodes_value() {
    let cluster = NatsCluster::start(1).await;
    let client = connect(&cluster).await;
    let js = async_nats::jetstream::new(client.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: STREAM_NAME.into(),
        subjects: vec!["ocpm.ev.>".into()],
        duplicate_window: Duration::from_secs(48 * 3600),
        ..Default::default()
    })
    .await
    .unwrap();
    EventStream::open(client, &StreamSettings { replicas: 1 })
        .await
        .unwrap();
    let info = js.get_stream(STREAM_NAME).await.unwrap();
    assert_eq!(
        info.cached_info().config.duplicate_window,
        Duration::from_secs(DUPLICATE_WINDOW_SECONDS)
    );
}

/// The producer publishes batches like ingest requests, without pause, until told to stop.
const BATCH: usize = 100;
/// When the leader is killed: after this many events are acknowledged.
const KILL_AFTER_ACKED: usize = 1_000;
/// How many more events must be acknowledged after the kill before the producer stops, so the
/// kill certainly lands while publishing goes on (a few thousand events take a fraction of a
/// second here, less than the lookup of the leader).
const ACKED_AFTER_KILL: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_kill_9_of_the_stream_leader_exactly_once() {
    let mut cluster = NatsCluster::start(3).await;
    let client = connect(&cluster).await;
    let stream = EventStream::open(client.clone(), &R3).await.unwrap();

    let (progress_tx, mut progress) = tokio::sync::watch::channel(0usize);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let producer = {
        let stream = stream.clone();
        tokio::spawn(async move { produce(&stream, progress_tx, stop).await })
    };
    let wait_for = |n: usize, progress: &mut tokio::sync::watch::Receiver<usize>| {
        let mut progress = progress.clone();
        async move {
            while *progress.borrow_and_update() < n {
                progress.changed().await.expect("producer alive");
            }
        }
    };
    wait_for(KILL_AFTER_ACKED, &mut progress).await;
    let leader = stream_leader(&client).await;
    let victim = cluster.index_of(&leader).expect("leader is one of ours");
    let acked_at_kill = *progress.borrow();
    cluster.kill(victim);
    tokio::time::timeout(
        Duration::from_secs(120),
        wait_for(acked_at_kill + ACKED_AFTER_KILL, &mut progress),
    )
    .await
    .expect("publishing goes on after the leader's death");
    stop_tx.send_replace(true);

    let (acked, retried) = tokio::time::timeout(Duration::from_secs(120), producer)
        .await
        .expect("producer finishes")
        .expect("producer does not panic");
    // Usually some publishes fail at the kill and are retried; when the election is quick
    // enough that none did, the reading below still checks that nothing acknowledged was lost
    // or doubled across the leader change (the property under test), so this is only reported.
    if retried == 0 {
        eprintln!("note: no publish failed at the leader's kill (a quick election)");
    }

    // Read everything back with the old leader still dead: each acknowledged event is there,
    // at the sequence its ack named, exactly once, in sequence order.
    let last = retry("read the last sequence", || stream.last_sequence()).await;
    let mut reader = retry("open a reader", || stream.read_from(1)).await;
    let all = read(&mut reader, last as usize).await;
    let mut seen: HashMap<String, u64> = HashMap::new();
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.sequence, i as u64 + 1, "no gaps, in order");
        let previous = seen.insert(e.record.event.id.to_string(), e.sequence);
        assert_eq!(previous, None, "event {} stored twice", e.record.event.id);
    }
    assert_eq!(all.len(), acked.len(), "nothing stored twice, nothing lost");
    for (id, seq) in &acked {
        assert_eq!(
            seen.get(id),
            Some(seq),
            "acked event {id} at its acked sequence"
        );
    }

    // The killed server comes back with its store and rejoins. Right after the restart the
    // stream's info has been seen to report the restarted server's older end (1,000 of 2,000)
    // for a moment, so the check is that it converges to the full stream, and soon.
    cluster.restart(victim).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now_last = retry("read the last sequence", || stream.last_sequence()).await;
        if now_last == last {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stream's end stayed at {now_last} after the restart, not {last}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Publishes batches of new events until `stop`, retrying the failed events of each batch
/// until acknowledged; answers each event's acknowledged sequence and how many publishes
/// failed and were retried.
async fn produce(
    stream: &EventStream,
    progress: tokio::sync::watch::Sender<usize>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (HashMap<String, u64>, usize) {
    let mut acked = HashMap::new();
    let mut retried = 0;
    for first in (0..).step_by(BATCH) {
        if *stop.borrow() {
            break;
        }
        let mut pending: Vec<Event> = events(first..first + BATCH);
        let deadline = Instant::now() + Duration::from_millis(RETRY_DEADLINE_MS);
        while !pending.is_empty() {
            let results = stream.publish(ARRIVAL_MS, &pending).await;
            let mut failed = Vec::new();
            for (event, result) in pending.into_iter().zip(results) {
                match result {
                    Ok(ack) => {
                        acked.insert(event.id.to_string(), ack.sequence);
                    }
                    Err(_) => failed.push(event),
                }
            }
            if !failed.is_empty() {
                retried += failed.len();
                assert!(Instant::now() < deadline, "publishes failing for too long");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            pending = failed;
        }
        progress.send_replace(acked.len());
    }
    (acked, retried)
}

async fn stream_leader(client: &async_nats::Client) -> String {
    let js = async_nats::jetstream::new(client.clone());
    let stream = js.get_stream(STREAM_NAME).await.unwrap();
    let info = stream.cached_info();
    info.cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .expect("an R3 stream has a leader")
}

/// Reads exactly `n` events, riding out transient consumer errors.
async fn read(reader: &mut EventReader, n: usize) -> Vec<StreamEvent> {
    let deadline = Instant::now() + Duration::from_millis(READ_DEADLINE_MS);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, reader.next()).await {
            Ok(Ok(e)) => out.push(e),
            Ok(Err(ClusterError::Unavailable(_))) => continue,
            Ok(Err(e)) => panic!("reading the stream: {e}"),
            Err(_) => panic!("read {} of {n} events before the deadline", out.len()),
        }
    }
    out
}
