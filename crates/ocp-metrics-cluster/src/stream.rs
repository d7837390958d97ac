//! The event stream: one JetStream stream holding every accepted event, one message per event.

use crate::record::{self, EventRecord};
use crate::{ClusterError, js_error};
use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
use futures_util::StreamExt;
use ocp_metrics_core::Event;
use std::time::Duration;

/// The stream's name.
pub const STREAM_NAME: &str = "OCPM_EVENTS";
/// Every event subject starts with this; the next token names the group (see
/// [`EventStream::subject`]).
pub const SUBJECT_PREFIX: &str = "ocpm.ev";
/// JetStream's own duplicate window, in seconds. It only has to cover a producer's retries of
/// one request and a node's republish after a stream leader change: a few minutes. The servers
/// hold every id of the window in memory (about 260 bytes each on nats-server 2.9), so 5
/// minutes at 1,000 events/s costs ~80 MB per server; the 48-hour dedupe the API promises is
/// the nodes' own dedupe set, applied in stream order.
pub const DUPLICATE_WINDOW_SECONDS: u64 = 300;
/// The largest message the stream accepts. The largest valid event encodes to about 3.1 KiB
/// (ten strings of at most 256 bytes, an id of at most 128 characters, a few integers; see the
/// test `the_largest_valid_event_fits_a_message`); anything bigger is a bug, refused by the
/// server instead of stored forever.
pub const EVENT_MESSAGE_BYTES_MAX: i32 = 8 * 1024;

/// What the stream is and how it is replicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// How many servers hold each message: 1, or 3 on a three-server cluster (acknowledged once
    /// a majority has it).
    pub replicas: usize,
}

/// JetStream's answer to one event's publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The event's stream sequence: the new message's, or for a duplicate the original's.
    pub sequence: u64,
    /// JetStream already had a message with this event's `Nats-Msg-Id` inside its duplicate
    /// window, and stored nothing.
    pub duplicate: bool,
}

/// One event read back from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    pub sequence: u64,
    pub record: EventRecord,
}

/// The event stream, created or validated on open.
#[derive(Debug, Clone)]
pub struct EventStream {
    js: Context,
}

impl EventStream {
    /// Creates the stream, or checks that the existing one has the settings this node needs.
    /// A stream created by another node with other replicas, subjects, storage or retention is
    /// an operator's decision to reconcile (`nats stream edit`, or the node's replicas flag), so
    /// it is reported, not changed; the duplicate window alone is brought to this node's value
    /// because nothing but memory depends on it.
    pub async fn open(
        client: async_nats::Client,
        settings: &StreamSettings,
    ) -> Result<EventStream, ClusterError> {
        let js = crate::jetstream_context(client);
        let wanted = stream_config(settings);
        match crate::existing_stream(&js, STREAM_NAME).await? {
            Some(info) => {
                let have = &info.config;
                check_same(
                    STREAM_NAME,
                    "replicas",
                    have.num_replicas,
                    wanted.num_replicas,
                )?;
                check_same(STREAM_NAME, "subjects", &have.subjects, &wanted.subjects)?;
                check_same(STREAM_NAME, "storage", have.storage, wanted.storage)?;
                check_same(STREAM_NAME, "retention", have.retention, wanted.retention)?;
                if have.duplicate_window != wanted.duplicate_window {
                    let mut updated = have.clone();
                    updated.duplicate_window = wanted.duplicate_window;
                    js.update_stream(updated)
                        .await
                        .map_err(|e| js_error("update the stream's duplicate window", e))?;
                }
            }
            None => {
                js.create_stream(wanted)
                    .await
                    .map_err(|e| js_error("create the event stream", e))?;
            }
        }
        Ok(EventStream { js })
    }

    /// The subject of `group`'s events: `ocpm.ev.<token>`, where the token is the group name
    /// itself when it is a plain NATS token (ASCII letters, digits, `-` and `_`, at most 64
    /// bytes), and otherwise `~` and 16 hex digits of its 64-bit xxh3 hash. Group names may hold
    /// dots, spaces and wildcards, which a subject cannot. The subject only serves filtering
    /// and later partitioning; the group itself travels in the payload, so two groups sharing a
    /// hashed token would be harmless.
    pub fn subject(group: &str) -> String {
        let plain = !group.is_empty()
            && group.len() <= 64
            && group
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if plain {
            format!("{SUBJECT_PREFIX}.{group}")
        } else {
            format!(
                "{SUBJECT_PREFIX}.~{:016x}",
                xxhash_rust::xxh3::xxh3_64(group.as_bytes())
            )
        }
    }

    /// Publishes `events` (received at `arrival_ms`), one message each with `Nats-Msg-Id` =
    /// [`record::message_id`], all in flight at once, then awaits every acknowledgement.
    /// Answers one result per event, in order. An `Ok` means the event is in the stream on a
    /// majority of its replicas (see the crate docs for what that means on disk); an error
    /// means it may or may not be, and publishing it again is safe within the duplicate window.
    /// Events are published in the given order on one connection, so the stream keeps their
    /// order.
    pub async fn publish<'a>(
        &self,
        arrival_ms: i64,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Vec<Result<Published, ClusterError>> {
        let events = events.into_iter();
        let mut pending = Vec::with_capacity(events.size_hint().0);
        for e in events {
            let publish = PublishMessage::build()
                .message_id(record::message_id(e.group.as_str(), &e.id))
                .payload(record::encode(arrival_ms, e).into());
            pending.push(
                self.js
                    .send_publish(Self::subject(e.group.as_str()), publish)
                    .await,
            );
        }
        // Awaited together, not one after another: each ack's timeout starts when it is polled,
        // so awaiting in turn would let a lost connection cost the timeout once per event.
        futures_util::future::join_all(pending.into_iter().map(|sent| async move {
            let ack =
                sent.map_err(|e| ClusterError::Unavailable(format!("publish not sent: {e}")))?;
            let ack = ack
                .await
                .map_err(|e| ClusterError::Unavailable(format!("publish not acknowledged: {e}")))?;
            // nats-server 2.9 on a replicated stream answers a repeat of a message id whose
            // first publish is still being replicated with sequence 0 and `duplicate`; that
            // first message may yet be lost (a leader change), so this is not an
            // acknowledgement of anything stored (nats-server pull requests 5827 and 6415).
            if ack.duplicate && ack.sequence == 0 {
                return Err(ClusterError::Unavailable(
                    "the stream answered this event as a repeat of a publish it has not finished storing; retry".into(),
                ));
            }
            Ok(Published {
                sequence: ack.sequence,
                duplicate: ack.duplicate,
            })
        }))
        .await
    }

    /// The stream's handle, looked up fresh (its cached info is the state now); `what` says
    /// what for, in the error.
    async fn stream(
        &self,
        what: &str,
    ) -> Result<async_nats::jetstream::stream::Stream, ClusterError> {
        self.js
            .get_stream(STREAM_NAME)
            .await
            .map_err(|e| js_error(what, e))
    }

    /// The stream's last sequence now (0 when empty): what a node starting up must have applied
    /// before it reports ready.
    pub async fn last_sequence(&self) -> Result<u64, ClusterError> {
        let stream = self.stream("read the stream's state").await?;
        Ok(stream.cached_info().state.last_sequence)
    }

    /// The stream's first and last sequences now: the first still held (purges move it up; 1
    /// when nothing was purged) and the last written (0 when empty).
    pub async fn bounds(&self) -> Result<(u64, u64), ClusterError> {
        let stream = self.stream("read the stream's state").await?;
        let state = &stream.cached_info().state;
        Ok((state.first_sequence, state.last_sequence))
    }

    /// Deletes every message below `sequence`. Only for what a verified snapshot covers: the
    /// caller passes the older kept snapshot's covered sequence + 1 (see the crate docs).
    pub async fn purge_below(&self, sequence: u64) -> Result<u64, ClusterError> {
        let stream = self.stream("open the stream to purge it").await?;
        let purged = stream
            .purge()
            .sequence(sequence)
            .await
            .map_err(|e| js_error("purge the stream", e))?;
        Ok(purged.purged)
    }

    /// Reads the stream in order from `start_sequence` (1 for the beginning, or a snapshot's
    /// covered sequence + 1), and keeps delivering new events as they are published.
    ///
    /// This is an ordered pull consumer: ephemeral, one replica, no acknowledgements; the
    /// client pulls batches, and on a gap or missed heartbeats (a server failover, a
    /// reconnect) recreates it from the last delivered sequence + 1. Its position is the node's
    /// own business (the sequence its rollups or snapshot cover), so nothing is stored on the
    /// servers per node and nothing is acknowledged per message.
    ///
    /// Chosen over the ordered push consumer by measurement (`examples/throughput.rs`, 50,000
    /// events, this two-core machine shared with other builds): with the machine lightly
    /// loaded (load average 2-5) both read 160k-215k events/s on R1 and R3 alike; with it
    /// heavily loaded (load average 13-15) the pull consumer kept 134k-169k events/s while the
    /// push consumer fell to 50k-76k, because its server-side flow control stalls whenever the
    /// client is slow to answer a flow-control request. Nodes share cores with their work, so
    /// the consumer that degrades gracefully wins.
    pub async fn read_from(&self, start_sequence: u64) -> Result<EventReader, ClusterError> {
        let stream = self.stream("open the stream for reading").await?;
        let deliver_policy = if start_sequence <= 1 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence { start_sequence }
        };
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| js_error("create an ordered consumer", e))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| js_error("subscribe to the ordered consumer", e))?;
        Ok(EventReader {
            messages,
            next_sequence: start_sequence.max(1),
            closed: false,
        })
    }
}

/// Events in stream order, from an ordered consumer.
pub struct EventReader {
    messages: pull::Ordered,
    /// The lowest sequence not yet delivered: anything below is a redelivery and is skipped.
    next_sequence: u64,
    /// The consumer ended (its connection was closed, or it skipped a sequence): read on with
    /// a new reader from [`EventReader::next_sequence`].
    closed: bool,
}

impl std::fmt::Debug for EventReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReader")
            .field("next_sequence", &self.next_sequence)
            .finish_non_exhaustive()
    }
}

impl EventReader {
    /// The next sequence this reader would deliver.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// Whether the consumer has ended for good; a new reader must take over.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The next event in stream order, waiting for one to be published if the reader is at
    /// the end. `Err(Unavailable)` reports a transient consumer problem (missed heartbeats
    /// while a server fails over); the reader carries on from where it was, so call `next`
    /// again. `Err(Decode)` is a message this build cannot read: stop, do not skip it, or the
    /// node's state would differ from its peers'.
    pub async fn next(&mut self) -> Result<StreamEvent, ClusterError> {
        loop {
            let message = match self.messages.next().await {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    return Err(ClusterError::Unavailable(format!(
                        "ordered consumer: {e} (it resumes by itself)"
                    )));
                }
                None => {
                    self.closed = true;
                    return Err(ClusterError::Unavailable(
                        "ordered consumer closed: the NATS connection was closed".into(),
                    ));
                }
            };
            let sequence = message
                .info()
                .map_err(|e| ClusterError::Unavailable(format!("message without metadata: {e}")))?
                .stream_sequence;
            // The ordered consumer is meant to deliver without gaps or repeats; these checks
            // make sure of it. A repeat is skipped. A gap (the stream's sequences are
            // contiguous: single messages are never deleted, purges only drop a prefix that
            // snapshots cover) ends this reader so that a new one restarts at the first
            // missing sequence; skipping would make this node's state differ from its peers'.
            if sequence < self.next_sequence {
                continue;
            }
            if sequence > self.next_sequence {
                self.closed = true;
                return Err(ClusterError::Unavailable(format!(
                    "ordered consumer delivered sequence {sequence} where {} was due; reading again from there",
                    self.next_sequence
                )));
            }
            let record = record::decode(&message.payload)
                .map_err(|reason| ClusterError::Decode { sequence, reason })?;
            self.next_sequence = sequence + 1;
            return Ok(StreamEvent { sequence, record });
        }
    }
}

fn stream_config(settings: &StreamSettings) -> Config {
    Config {
        name: STREAM_NAME.into(),
        description: Some("ocp-metrics events, one message per event".into()),
        subjects: vec![format!("{SUBJECT_PREFIX}.>")],
        // Limits retention with no limits set: the stream keeps everything until a node
        // explicitly purges below the older of the two kept snapshots (see the crate docs);
        // nothing ages out behind the snapshots' back.
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        storage: StorageType::File,
        num_replicas: settings.replicas,
        duplicate_window: Duration::from_secs(DUPLICATE_WINDOW_SECONDS),
        max_message_size: EVENT_MESSAGE_BYTES_MAX,
        // Single messages are never deleted: the log is the record of what was acknowledged.
        deny_delete: true,
        ..Default::default()
    }
}

/// Compares one setting of an existing stream (or a bucket's stream) with this node's.
pub(crate) fn check_same<T: std::fmt::Debug + PartialEq>(
    name: &str,
    field: &str,
    have: T,
    want: T,
) -> Result<(), ClusterError> {
    if have == want {
        return Ok(());
    }
    Err(ClusterError::Mismatch(format!(
        "JetStream stream `{name}` exists with {field} {have:?}, but this node is configured for \
         {want:?}; start the node with the settings the cluster uses, or change the stream with \
         the nats CLI (`nats stream edit {name}`)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocp_metrics_core::event::{Counts, MiniappEnd, MiniappResult};
    use ocp_metrics_core::limits::{EVENT_ID_CHARS_MAX, EVENT_STRING_BYTES_MAX};
    use ocp_metrics_core::{GroupName, Label};

    #[test]
    fn the_largest_valid_event_fits_a_message() {
        let long = "x".repeat(EVENT_STRING_BYTES_MAX);
        let label = || Label::parse(&long).unwrap();
        let event = Event {
            // Four-byte characters: the id bound counts characters, not bytes.
            id: "\u{1F600}".repeat(EVENT_ID_CHARS_MAX).into(),
            group: GroupName::parse(&long).unwrap(),
            session_id: label(),
            channel: label(),
            region: label(),
            test: true,
            time: i64::MAX,
            kind: ocp_metrics_core::EventKind::MiniappEnd(Box::new(MiniappEnd {
                started_at: i64::MIN,
                miniapp_name: label(),
                miniapp_id: label(),
                miniapp_type: label(),
                locale: label(),
                flow_name: Some(label()),
                result: MiniappResult::Other,
                fail_reason: label(),
                counts: Counts {
                    agent_requests: u32::MAX,
                    no_inputs: u32::MAX,
                    no_matches: u32::MAX,
                    system_errors: u32::MAX,
                    critical_errors: u32::MAX,
                },
            })),
        };
        let bytes = record::encode(i64::MAX, &event).len();
        // The message also carries the Nats-Msg-Id header (~50 bytes).
        assert!(
            bytes + 100 < EVENT_MESSAGE_BYTES_MAX as usize,
            "{bytes} bytes"
        );
        assert!(
            bytes > 3_000,
            "{bytes} bytes: the bound above is not trivially loose"
        );
    }

    #[test]
    fn subjects_are_plain_tokens_or_hashes() {
        assert_eq!(EventStream::subject("acme-eu_1"), "ocpm.ev.acme-eu_1");
        let hashed = EventStream::subject("acme.eu *>");
        assert!(hashed.starts_with("ocpm.ev.~"), "{hashed}");
        assert_eq!(hashed.len(), "ocpm.ev.~".len() + 16);
        assert_ne!(hashed, EventStream::subject("acme.eu *"));
        assert!(EventStream::subject(&"a".repeat(65)).starts_with("ocpm.ev.~"));
    }
}
