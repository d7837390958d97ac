//! The seams between the HTTP layer and a backend.
//!
//! The server holds one `Arc<dyn Backend>`, chosen once by the binary: the embedded engine
//! (`ocp-metrics-store`: a file log, in-memory rollups) or a cluster node
//! (`ocp-metrics-cluster`: a NATS JetStream stream shared by every node, in-memory rollups
//! applied from it in stream order). A backend takes validated [`Event`]s in and answers [`Query`]s; it knows no HTTP and
//! no JSON, and the server knows no storage.
//!
//! The semantics every implementation keeps:
//! - **Durable before answered.** [`Ingest::ingest`] returns `Ok` only when every accepted
//!   event survives a crash of this process (for the embedded engine: in its log and fsynced;
//!   for a cluster node: in the shared stream, acknowledged by its replicas).
//!   On `Err`, nothing of the call was accepted, except that a large call committed in chunks
//!   may have had its first chunks accepted (the error says so); either way a retry of the
//!   whole call counts every event once, the taken ones being answered as duplicates.
//! - **Exactly once within the dedupe horizon.** An event whose `(group, id)` was accepted
//!   within the horizon (49 hours) is answered as a duplicate and counted once.
//! - **Read your writes.** Once `ingest` returned `Ok`, every later [`Queries::query`] on the
//!   same backend sees the accepted events.
//! - **Queries are CPU work.** `query` may take milliseconds on a large window: async callers
//!   run it on a blocking thread.

use jiff::Timestamp;
use ocp_metrics_core::{Answer, Event, Family, Query, QueryError};
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use tokio::sync::watch;

/// A boxed, sendable future: what the object-safe async methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How the binary hands the server its backend: opened in the background after the server has
/// bound its listener (so `/healthz` answers while a store recovers), once.
pub type OpenBackend =
    Box<dyn FnOnce() -> BoxFuture<'static, Result<std::sync::Arc<dyn Backend>, String>> + Send>;

/// The whole backend the server is given.
pub trait Backend: Ingest + Queries + Debug {
    /// The backend's own health and counters, for `/metrics` (no tenant data).
    fn samples(&self) -> Vec<Sample>;
    /// Finishes queued work and stops (the embedded engine also writes a final checkpoint).
    fn shutdown(&self) -> BoxFuture<'_, ()>;
    /// Why the backend should not get traffic now, for `/readyz`: `None` when it is current.
    /// A cluster node says so once it is more than a few seconds behind the shared log, so that
    /// a load balancer sends requests to nodes that are current. The embedded engine, once
    /// open, is always ready.
    fn not_ready(&self) -> Option<String> {
        None
    }
}

/// The write side: dedupe, make durable, apply.
pub trait Ingest: Send + Sync {
    /// Takes validated events; see the crate documentation for what `Ok` promises.
    fn ingest(&self, events: Vec<Event>) -> BoxFuture<'_, Result<IngestOutcome, IngestError>>;
}

/// The read side: answers over everything acknowledged so far.
pub trait Queries: Send + Sync {
    /// The backend's clock: what "now" is for query windows and retention.
    fn now(&self) -> Timestamp;
    /// Answers one query.
    fn query(&self, q: &Query) -> Result<Answer, QueryFailure>;
    /// Distinct values seen for dimension `dim` of `family` in `group`, sorted (for pickers).
    fn dimension_values(&self, group: &str, family: Family, dim: usize) -> Vec<String>;
    /// Groups that have any data, sorted.
    fn groups(&self) -> Vec<String>;
    /// A counter bumped after every change that queries can see (an applied commit), for
    /// live updates to wake on instead of polling.
    fn changes(&self) -> watch::Receiver<u64>;
    /// `None` while answers are current; otherwise the time up to which this backend's data is
    /// known to be complete (a cluster node cut off from the shared log answers from what it
    /// has, and the HTTP layer marks such answers stale with this time). The embedded engine
    /// is always current: it is the log.
    fn stale_since(&self) -> Option<Timestamp> {
        None
    }
}

/// Why a query got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryFailure {
    /// The query asks for too much (an answer limit); the message says how to narrow it.
    #[error(transparent)]
    Invalid(#[from] QueryError),
    /// Part of the data lives in a store that cannot be read now (a cluster's batch warehouse);
    /// nothing is lost, and the same query will be answered once it is back.
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after_seconds: u64,
    },
}

/// What became of one ingest call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    pub accepted: usize,
    /// Indices (into the submitted batch) of events answered as duplicates.
    pub duplicates: Vec<usize>,
    /// Indices (into the submitted batch) of events refused by a state bound
    /// (a state limit), each with the message saying which and why; ascending.
    pub rejected: Vec<(usize, String)>,
}

/// Why an ingest call did not accept (all of) its events.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    #[error("the ingest queue is full; retry after a short pause")]
    Overloaded,
    /// The text says what was lost and whether any of the request was accepted: nothing, or
    /// (for a request committed in chunks) its first chunks.
    #[error("events could not be made durable: {0}")]
    Unavailable(String),
    #[error("the server is shutting down; retry against another instance or after restart")]
    ShuttingDown,
    /// One request's accepted events encode to more than one log record may hold; nothing of
    /// that request was accepted (other requests of the same group commit are unaffected).
    #[error(
        "the accepted events of this request encode to {bytes} bytes, over the event log's record limit of {max} bytes; nothing of it was accepted: send fewer events per request"
    )]
    TooLarge { bytes: u64, max: u32 },
}

/// One unlabelled sample of a backend's health.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name without the `ocp_metrics_` prefix, e.g. `commits_total`.
    pub name: &'static str,
    pub kind: SampleKind,
    pub help: &'static str,
    pub value: f64,
}

/// The Prometheus type of a [`Sample`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    Counter,
    Gauge,
}

impl Sample {
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Sample {
        Sample {
            name,
            kind: SampleKind::Counter,
            help,
            value: value as f64,
        }
    }

    pub fn gauge(name: &'static str, help: &'static str, value: f64) -> Sample {
        Sample {
            name,
            kind: SampleKind::Gauge,
            help,
            value,
        }
    }
}

/// The gauges of the rollups' size, the same for every backend that holds rollups.
pub fn rollup_samples(s: &ocp_metrics_core::rollup::RollupStats) -> Vec<Sample> {
    vec![
        Sample::gauge("groups", "Groups with data.", s.groups as f64),
        Sample::gauge("series", "Rollup series held.", s.series as f64),
        Sample::gauge(
            "slots",
            "Rollup slots (time cells of series) held.",
            s.slots as f64,
        ),
        Sample::gauge(
            "dimension_values",
            "Distinct dimension values held, over all groups, families and dimensions.",
            s.interned_values as f64,
        ),
        Sample::gauge(
            "sessions_tracked",
            "Real-time session spans tracked.",
            s.sessions_tracked as f64,
        ),
    ]
}
