//! Named limits of the core. Every bound the core enforces lives here, units last, so that an
//! operator can find them and the docs can quote them.

/// Longest accepted string field of an event, in bytes (docs/api.md section 3.3).
pub const EVENT_STRING_BYTES_MAX: usize = 256;
/// Longest accepted event id, in characters (docs/api.md section 3.3).
pub const EVENT_ID_CHARS_MAX: usize = 128;
/// Largest accepted per-event count (`no_inputs` and friends). A single dialog with more than a
/// million no-inputs is a producer bug, and the bound keeps every rollup sum far from overflow.
pub const EVENT_COUNT_MAX: u64 = 1_000_000;
/// How far ahead of the server clock an event `time` may be (docs/api.md section 3.4), in seconds.
pub const EVENT_FUTURE_SKEW_SECONDS_MAX: i64 = 5 * 60;
/// Real-time retention promised to users, in seconds (48 hours).
pub const RT_RETENTION_SECONDS: i64 = 48 * 3600;
/// Real-time data is kept this much longer than promised, so that an hour bucket floored below
/// the 48-hour limit is still complete, in seconds.
pub const RT_RETENTION_MARGIN_SECONDS: i64 = 3600;
/// Batch retention promised to users, in seconds (720 days).
pub const BATCH_RETENTION_SECONDS: i64 = 720 * 86_400;
/// A query `start` may lie this far before the retention limit and is then clamped to it rather
/// than refused: clients compute `now - 48h` a moment before we read our clock, in seconds.
pub const QUERY_START_GRACE_SECONDS: i64 = 5 * 60;
/// Most series in one answer (docs/api.md section 5.4).
pub const ANSWER_SERIES_MAX: usize = 10_000;
/// Most data points (series x buckets) in one answer: 10,000 series of 720 daily points would be
/// a 200 MB answer, so the product bounds the answer, not just the series count.
pub const ANSWER_POINTS_MAX: usize = 2_000_000;
/// Most metrics named in one query.
pub const QUERY_METRICS_MAX: usize = 64;
/// Most values in one filter array.
pub const FILTER_VALUES_MAX: usize = 1_000;
/// Most distinct values of one dimension of one family in one group. A producer that puts a
/// session id into `flow_name` would otherwise grow memory without bound; events that would
/// exceed it are rejected (per event, before they are logged) with a message naming the
/// dimension. Values that no longer hold any data are forgotten at checkpoints, so the bound is
/// on values live within the retention windows. Configurable: `StateLimits`.
pub const DIMENSION_VALUES_MAX: usize = 100_000;
/// Most real-time session spans tracked per group at once (each is a live or recent session,
/// kept 49 hours after its last known instant). An event that would start tracking one more is
/// rejected (per event, before it is logged) with a message naming `session_id`; events of
/// sessions already tracked, and events too old for the real-time window, are unaffected.
/// Configurable: `StateLimits`.
pub const RT_SESSIONS_PER_GROUP_MAX: usize = 2_000_000;
/// Most series (distinct tuples of dimension values, summed over the families) held per group.
/// The per-dimension bound alone still allows its product of tuples (100,000 flow names times
/// every locale, channel and region); each series costs about 150 bytes of bookkeeping plus its
/// slots, and every query and retention pass walks a family's series, so one group's
/// combinatorial labels would cost memory and time for every tenant. An event that would start
/// one more series is rejected (per event, before it is logged) with a message naming the
/// family and the tuple; events of existing series are unaffected, and series whose data left
/// the retention windows are forgotten at checkpoints. Configurable: `StateLimits`.
pub const SERIES_PER_GROUP_MAX: usize = 1_000_000;
/// Most characters of user input echoed back in an error message: enough to recognise the value,
/// and a megabyte-long value does not come back as a megabyte-long message.
pub const ECHO_CHARS_MAX: usize = 64;
