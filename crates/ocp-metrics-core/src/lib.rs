//! The pure core of ocp-metrics: the event model and its validation, attribution of events to
//! time slots, the metric definitions of every endpoint, bucket maths in any IANA time zone, the
//! in-memory rollups and the query engine over them.
//!
//! Invariant: this crate does no IO, reads no clock of its own (time is an argument or a
//! [`Clock`]), and knows no JSON. Callers hand it plain Rust values and get plain Rust values back.

pub mod clock;
pub mod dedupe;
pub mod domain;
pub mod echo;
pub mod event;
pub mod limits;
pub mod metrics;
pub mod query;
pub mod rollup;
#[cfg(test)]
mod testkit;
pub mod time;

pub use clock::{Clock, ManualClock, OffsetClock, SystemClock};
pub use dedupe::Dedupe;
pub use domain::{GroupName, Label};
pub use event::{Event, EventDraft, EventError, EventKind};
pub use metrics::{Endpoint, Family};
pub use query::{Answer, Query, QueryDraft, QueryError};
pub use rollup::Rollups;
