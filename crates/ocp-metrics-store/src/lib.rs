//! Durable embedded storage for ocp-metrics: the event log (write-ahead log) and checkpoints of
//! the state derived from it. Recovery is "load the newest checkpoint, replay the log after its
//! position"; both halves sit behind traits ([`EventLog`], [`CheckpointStore`]) whose docs say
//! exactly when data is durable.

pub mod checkpoint;
pub mod log;
pub mod private;
pub mod snapshot;

pub use checkpoint::{Checkpoint, CheckpointError, CheckpointStore, FileCheckpoints};
pub use log::{EventLog, FileLog, FileLogOptions, LogError, LogPosition, RecoveryReport};
pub mod backend;
pub mod engine;

pub use backend::open_embedded;
pub use engine::{Engine, EngineConfig, EngineCounters, IngestError, IngestOutcome, RecoveryStats};
pub use ocp_metrics_core::rollup::StateLimits;
