//! Checkpoints: durable snapshots of the state derived from the event log, each tagged with the
//! log position it covers, so that recovery is "load the newest checkpoint, replay the log after
//! its position".
//!
//! [`CheckpointStore`] is the seam; [`FileCheckpoints`] keeps files `checkpoint-{seq:020}.bin`
//! in one directory, each a fixed header followed by the opaque payload:
//!
//! ```text
//! magic u32 | format version u32 | pos.segment u64 | pos.offset u64 | payload len u64 |
//! crc32c u32 over (the 32 header bytes before it ++ payload) | payload
//! ```
//!
//! All integers are little-endian. The CRC also covers the header so that a flipped bit in the
//! position cannot make recovery replay from the wrong place.
//!
//! File format versions: in format 2 (written now) the payload is self-describing, beginning
//! with its own version (see [`crate::snapshot`]). Format 1 files, written before payloads were
//! versioned, hold the version-1 payload body without that prefix; they are read as payload
//! version 1, so an upgrade never strands a checkpoint whose log was already truncated.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::log::LogPosition;
use crate::private::TMP_SUFFIX;

/// How many valid checkpoints are kept after a save: the newest, plus older ones to fall back to
/// when the newest turns out torn or corrupt.
pub const CHECKPOINTS_KEPT: usize = 2;

/// Identifies a checkpoint file ("OMCK" in little-endian bytes).
const CHECKPOINT_MAGIC: u32 = u32::from_le_bytes(*b"OMCK");
/// Bumped whenever the file layout changes (see the module documentation).
const CHECKPOINT_FORMAT_VERSION: u32 = 2;
/// The file format whose payload carried no version prefix of its own.
const CHECKPOINT_FORMAT_UNVERSIONED_PAYLOAD: u32 = 1;
/// The payload version that format-1 files hold.
const UNVERSIONED_PAYLOAD_VERSION: u32 = 1;
/// magic + version + segment + offset + payload len + crc.
const CHECKPOINT_HEADER_BYTES: usize = 4 + 4 + 8 + 8 + 8 + 4;
/// Where the CRC sits in the header; everything before it is covered by it.
const CHECKPOINT_CRC_OFFSET: usize = CHECKPOINT_HEADER_BYTES - 4;
const CHECKPOINT_FILE_PREFIX: &str = "checkpoint-";
const CHECKPOINT_FILE_SUFFIX: &str = ".bin";
const CHECKPOINT_FILE_DIGITS: usize = 20;

/// A checkpoint read back from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log position the snapshot covers: replay records after it.
    pub pos: LogPosition,
    /// The snapshot as saved; a format-1 file's payload comes with the version prefix it was
    /// written without (see the module documentation).
    pub bytes: Vec<u8>,
    /// How many newer checkpoint files were torn or corrupt and skipped to find this one.
    pub skipped_corrupt: u32,
}

/// Why a checkpoint operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The operating system refused an operation; `context` names what the store was doing.
    #[error("checkpoint I/O failed: {context}")]
    Io {
        context: &'static str,
        source: io::Error,
    },
    /// Checkpoint files exist but none of them validates. Starting from an empty state instead
    /// would silently lose whatever the log no longer holds, so this needs an operator.
    #[error("none of the {files} checkpoint files validates")]
    AllCorrupt { files: u32 },
}

impl CheckpointError {
    /// Whether the failure is the disk (or a quota) being full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            CheckpointError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
            ),
            CheckpointError::AllCorrupt { .. } => false,
        }
    }
}

/// Builds the `map_err` adapter that attaches what the store was doing to an I/O error.
fn io_context(context: &'static str) -> impl FnOnce(io::Error) -> CheckpointError {
    move |source| CheckpointError::Io { context, source }
}

/// The seam for snapshots of derived state.
///
/// Semantics:
/// - [`save`](CheckpointStore::save) returns `Ok` only once the checkpoint is durable (temporary
///   file written, fsynced, renamed over its final name, directory fsynced). A failed save
///   leaves the previously saved checkpoints untouched.
/// - [`load_latest`](CheckpointStore::load_latest) returns the newest checkpoint that validates,
///   falling back to older ones (with a warning, counted in
///   [`Checkpoint::skipped_corrupt`]) when newer ones are torn or corrupt. `Ok(None)` means no
///   checkpoint was ever kept: replay the whole log.
/// - [`retain_from`](CheckpointStore::retain_from) is the position the log must keep records
///   after, so that whichever kept checkpoint `load_latest` falls back to can still be replayed.
pub trait CheckpointStore: Send {
    /// Durably stores `bytes` as the snapshot covering the log up to `pos`.
    fn save(&mut self, pos: LogPosition, bytes: &[u8]) -> Result<(), CheckpointError>;
    /// The newest checkpoint that validates.
    fn load_latest(&self) -> Result<Option<Checkpoint>, CheckpointError>;
    /// The position the log must keep from: the position of the OLDEST checkpoint still kept
    /// (so that a fallback to it can still replay), or `LogPosition::START` when none.
    fn retain_from(&self) -> LogPosition;
}

/// A checkpoint file known to be valid, by sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Kept {
    seq: u64,
    pos: LogPosition,
}

/// The embedded checkpoint store: one file per checkpoint in a directory. See
/// [`CheckpointStore`] for the guarantees and the module documentation for the format.
#[derive(Debug)]
pub struct FileCheckpoints {
    dir: PathBuf,
    /// Valid checkpoint files on disk, oldest first.
    kept: Vec<Kept>,
    /// The sequence number of the next save; never reused, even after a failed save.
    next_seq: u64,
}

impl FileCheckpoints {
    /// Opens (creating if needed) the store in `dir`, deleting leftover temporary files of saves
    /// that never completed and validating the checkpoints present.
    pub fn open(dir: &Path) -> Result<FileCheckpoints, CheckpointError> {
        crate::private::create_dir(dir).map_err(io_context("create checkpoint directory"))?;
        let listing = list_dir(dir)?;
        for tmp in &listing.tmps {
            tracing::info!(path = %tmp.display(), "checkpoints: deleting an unfinished save");
            fs::remove_file(tmp).map_err(io_context("delete temporary checkpoint"))?;
        }
        let kept = listing
            .seqs
            .iter()
            .filter_map(|&seq| match read_checkpoint(&checkpoint_path(dir, seq)) {
                Ok(payload) => Some(Kept {
                    seq,
                    pos: payload.pos,
                }),
                Err(reason) => {
                    tracing::warn!(seq, %reason, "checkpoints: ignoring an invalid checkpoint");
                    None
                }
            })
            .collect();
        let next_seq = listing.seqs.last().map_or(1, |last| last + 1);
        Ok(FileCheckpoints {
            dir: dir.to_path_buf(),
            kept,
            next_seq,
        })
    }

    /// Deletes every checkpoint file except the newest `CHECKPOINTS_KEPT` valid ones (corrupt
    /// files included). Failing to delete only costs disk space, so it is a warning; a file that
    /// could not be deleted stays in `kept`, keeping `retain_from` conservative.
    fn prune(&mut self) {
        let keep_from = self.kept.len().saturating_sub(CHECKPOINTS_KEPT);
        let keep: Vec<u64> = self.kept[keep_from..].iter().map(|k| k.seq).collect();
        let seqs = match list_dir(&self.dir) {
            Ok(listing) => listing.seqs,
            Err(error) => {
                tracing::warn!(%error, "checkpoints: cannot list old checkpoints to delete");
                return;
            }
        };
        for seq in seqs.into_iter().filter(|seq| !keep.contains(seq)) {
            match fs::remove_file(checkpoint_path(&self.dir, seq)) {
                Ok(()) => self.kept.retain(|k| k.seq != seq),
                Err(error) => {
                    tracing::warn!(seq, %error, "checkpoints: cannot delete an old checkpoint")
                }
            }
        }
    }
}

impl CheckpointStore for FileCheckpoints {
    fn save(&mut self, pos: LogPosition, bytes: &[u8]) -> Result<(), CheckpointError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        // Atomic, so a crash at any point leaves either the complete new checkpoint or none of
        // it; an unfinished one is deleted by the next open.
        let header = encode_header(pos, bytes);
        crate::private::write_atomically(&self.dir, &checkpoint_name(seq), &[&header, bytes])
            .map_err(io_context("write checkpoint"))?;
        self.kept.push(Kept { seq, pos });
        self.prune();
        Ok(())
    }

    fn load_latest(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        let seqs = list_dir(&self.dir)?.seqs;
        let mut skipped_corrupt = 0;
        for &seq in seqs.iter().rev() {
            match read_checkpoint(&checkpoint_path(&self.dir, seq)) {
                Ok(Payload { pos, bytes }) => {
                    return Ok(Some(Checkpoint {
                        pos,
                        bytes,
                        skipped_corrupt,
                    }));
                }
                Err(reason) => {
                    tracing::warn!(seq, %reason, "checkpoints: skipping an invalid checkpoint, falling back to an older one");
                    skipped_corrupt += 1;
                }
            }
        }
        match skipped_corrupt {
            0 => Ok(None),
            files => Err(CheckpointError::AllCorrupt { files }),
        }
    }

    fn retain_from(&self) -> LogPosition {
        self.kept
            .iter()
            .map(|k| k.pos)
            .min()
            .unwrap_or(LogPosition::START)
    }
}

/// The header for `payload` covering the log up to `pos`.
fn encode_header(pos: LogPosition, payload: &[u8]) -> [u8; CHECKPOINT_HEADER_BYTES] {
    let mut header = [0u8; CHECKPOINT_HEADER_BYTES];
    header[0..4].copy_from_slice(&CHECKPOINT_MAGIC.to_le_bytes());
    header[4..8].copy_from_slice(&CHECKPOINT_FORMAT_VERSION.to_le_bytes());
    header[8..16].copy_from_slice(&pos.segment.to_le_bytes());
    header[16..24].copy_from_slice(&pos.offset.to_le_bytes());
    header[24..32].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    let crc = checksum(&header[..CHECKPOINT_CRC_OFFSET], payload);
    header[CHECKPOINT_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// The CRC32C over the header fields before the CRC and the payload.
fn checksum(header_fields: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(header_fields), payload)
}

/// A validated checkpoint's contents.
#[derive(Debug)]
struct Payload {
    pos: LogPosition,
    bytes: Vec<u8>,
}

/// Why a checkpoint file was rejected; only ever logged.
#[derive(Debug, thiserror::Error)]
enum Invalid {
    #[error("cannot read it: {0}")]
    Io(#[from] io::Error),
    #[error("shorter than its header")]
    Short,
    #[error("bad magic")]
    Magic,
    #[error("unknown format version {0}")]
    Version(u32),
    #[error("header says {header} payload bytes but the file holds {file}")]
    Length { header: u64, file: u64 },
    #[error("checksum mismatch")]
    Crc,
}

/// Reads and fully validates one checkpoint file. The header is read first so the payload can
/// be read straight into a buffer of the right size.
fn read_checkpoint(path: &Path) -> Result<Payload, Invalid> {
    let mut file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let Some(payload_len) = file_len.checked_sub(CHECKPOINT_HEADER_BYTES as u64) else {
        return Err(Invalid::Short);
    };
    let mut header = [0u8; CHECKPOINT_HEADER_BYTES];
    file.read_exact(&mut header)?;
    let u32_at = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().expect("8 bytes"));
    if u32_at(0) != CHECKPOINT_MAGIC {
        return Err(Invalid::Magic);
    }
    let format = u32_at(4);
    if format != CHECKPOINT_FORMAT_VERSION && format != CHECKPOINT_FORMAT_UNVERSIONED_PAYLOAD {
        return Err(Invalid::Version(format));
    }
    if u64_at(24) != payload_len {
        return Err(Invalid::Length {
            header: u64_at(24),
            file: payload_len,
        });
    }
    // A format-1 payload gets the version prefix it was written without, read in place so that
    // a large checkpoint is not copied.
    let prefix = match format {
        CHECKPOINT_FORMAT_UNVERSIONED_PAYLOAD => UNVERSIONED_PAYLOAD_VERSION.to_le_bytes().to_vec(),
        _ => Vec::new(),
    };
    let mut bytes = prefix;
    let prefix_len = bytes.len();
    bytes.reserve_exact(usize::try_from(payload_len).unwrap_or(0));
    file.take(payload_len).read_to_end(&mut bytes)?;
    let read = &bytes[prefix_len..];
    if read.len() as u64 != payload_len {
        return Err(Invalid::Length {
            header: payload_len,
            file: read.len() as u64,
        });
    }
    if checksum(&header[..CHECKPOINT_CRC_OFFSET], read) != u32_at(CHECKPOINT_CRC_OFFSET) {
        return Err(Invalid::Crc);
    }
    let pos = LogPosition {
        segment: u64_at(8),
        offset: u64_at(16),
    };
    Ok(Payload { pos, bytes })
}

/// The final file name of checkpoint `seq`.
fn checkpoint_name(seq: u64) -> String {
    format!("{CHECKPOINT_FILE_PREFIX}{seq:0CHECKPOINT_FILE_DIGITS$}{CHECKPOINT_FILE_SUFFIX}")
}

/// The final path of checkpoint `seq`.
fn checkpoint_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(checkpoint_name(seq))
}

/// The sequence number encoded in a checkpoint file name, if it is one.
fn parse_checkpoint_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(CHECKPOINT_FILE_PREFIX)?
        .strip_suffix(CHECKPOINT_FILE_SUFFIX)?;
    let well_formed =
        digits.len() == CHECKPOINT_FILE_DIGITS && digits.bytes().all(|b| b.is_ascii_digit());
    well_formed.then(|| digits.parse().ok()).flatten()
}

/// The checkpoint-related files of a directory.
#[derive(Debug, Default)]
struct Listing {
    /// Sequence numbers of checkpoint files, ascending.
    seqs: Vec<u64>,
    /// Temporary files of saves that never completed.
    tmps: Vec<PathBuf>,
}

/// Lists the checkpoint files and leftover temporary files in `dir`; other files are ignored.
fn list_dir(dir: &Path) -> Result<Listing, CheckpointError> {
    let mut listing = Listing::default();
    for entry in fs::read_dir(dir).map_err(io_context("list checkpoint directory"))? {
        let entry = entry.map_err(io_context("list checkpoint directory"))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(CHECKPOINT_FILE_PREFIX) && name.ends_with(TMP_SUFFIX) {
            listing.tmps.push(entry.path());
        } else if let Some(seq) = parse_checkpoint_name(name) {
            listing.seqs.push(seq);
        }
    }
    listing.seqs.sort_unstable();
    Ok(listing)
}
