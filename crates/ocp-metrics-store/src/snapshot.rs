//! The checkpoint payload: the state derived from the log (rollups and the dedupe set) in a
//! versioned encoding, so that a build can read the checkpoints of the build before it.
//!
//! A checkpoint is the only copy of what the log no longer holds (the log is truncated behind
//! it), so a format change must never make an old checkpoint unreadable: each payload starts
//! with its format version, and [`decode`] keeps a reader for every version it ever wrote.
//!
//! ```text
//! payload version u32 (little-endian) | body
//! ```
//!
//! | version | body |
//! |---|---|
//! | 1 | postcard of `{ rollups: Rollups, dedupe: { seen: map of key to arrival hour, oldest_hour } }` |
//! | 2 | postcard of `{ rollups: Rollups, dedupe: Dedupe }`, the dedupe set as its base hour and one sorted byte string of 16-byte entries (see `ocp_metrics_core::dedupe`) |
//!
//! To change the body: add version N+1 here, make [`encode`] write it, keep the version-N
//! reader (with frozen copies of the old types if the live ones changed) converting into the
//! current state, and add a fixture of version N to `tests/checkpoint_compat.rs`.

use ocp_metrics_core::{Dedupe, Rollups};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// The payload version [`encode`] writes.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 2;
/// Bytes of the version prefix.
const VERSION_BYTES: usize = 4;

/// Why a checkpoint payload could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("the checkpoint payload is shorter than its version prefix")]
    Short,
    #[error(
        "the checkpoint was written in payload format {0}, newer than this build reads (up to {SNAPSHOT_FORMAT_VERSION}); run the newer build, or move the checkpoints directory away to rebuild from the log"
    )]
    Newer(u32),
    #[error("the checkpoint payload (format {version}) does not decode: {reason}")]
    Body { version: u32, reason: String },
}

/// The body of versions 1 and 2 (they differ in the dedupe set's encoding); borrowed for
/// writing, owned for reading.
#[derive(Serialize, Deserialize)]
struct Body<R, D> {
    rollups: R,
    dedupe: D,
}

/// The dedupe set as version 1 stored it (a frozen copy of the type it then had).
#[derive(Deserialize)]
struct DedupeV1 {
    /// Key to arrival hour (hours since the epoch).
    seen: FxHashMap<u128, u32>,
    #[serde(rename = "oldest_hour")]
    _oldest_hour: u32,
}

/// Encodes the state as a payload of the current version.
pub fn encode(rollups: &Rollups, dedupe: &Dedupe) -> Result<Vec<u8>, postcard::Error> {
    let prefix = SNAPSHOT_FORMAT_VERSION.to_le_bytes().to_vec();
    postcard::to_extend(&Body { rollups, dedupe }, prefix)
}

/// Decodes a payload of any version this build has written.
pub fn decode(payload: &[u8]) -> Result<(Rollups, Dedupe), SnapshotError> {
    let (version, body) = split_version(payload)?;
    let fail = |e: postcard::Error| SnapshotError::Body {
        version,
        reason: e.to_string(),
    };
    match version {
        1 => {
            let body: Body<Rollups, DedupeV1> = postcard::from_bytes(body).map_err(fail)?;
            Ok((body.rollups, Dedupe::from_hours(body.dedupe.seen)))
        }
        2 => {
            let body: Body<Rollups, Dedupe> = postcard::from_bytes(body).map_err(fail)?;
            Ok((body.rollups, body.dedupe))
        }
        newer => Err(SnapshotError::Newer(newer)),
    }
}

/// The version prefix and the body after it.
fn split_version(payload: &[u8]) -> Result<(u32, &[u8]), SnapshotError> {
    let Some((prefix, body)) = payload.split_first_chunk::<VERSION_BYTES>() else {
        return Err(SnapshotError::Short);
    };
    Ok((u32::from_le_bytes(*prefix), body))
}
