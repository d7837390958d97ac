//! The durable event log (write-ahead log).
//!
//! [`EventLog`] is the seam; [`FileLog`] is the embedded implementation: a directory of segment
//! files `wal-{segment:020}.log`, each a sequence of framed records
//!
//! ```text
//! magic u32 LE | len u32 LE | crc32c u32 LE over (len bytes ++ payload) | payload (len bytes)
//! ```
//!
//! Payloads are opaque bytes here. A record's [`LogPosition`] is the segment number and the byte
//! offset just past its end inside that segment, so positions order records totally and the end
//! of the last record of an append is a natural "covered up to" mark for checkpoints.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Segments are rotated before an append would push a non-empty segment past this size.
pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 64 * 1024 * 1024;
/// The largest payload a single record may carry unless configured otherwise.
pub const RECORD_BYTES_MAX_DEFAULT: u32 = 64 * 1024 * 1024;

/// Marks the start of every record. Chosen with high bits set in every byte so that it rarely
/// appears inside text-like payloads, which keeps resynchronisation after corruption cheap.
const RECORD_MAGIC: u32 = 0x9BE1_7AD3;
const RECORD_MAGIC_BYTES: [u8; 4] = RECORD_MAGIC.to_le_bytes();
/// magic + len + crc, each a u32.
const RECORD_HEADER_BYTES: usize = 12;
/// The number given to the first segment of a fresh log; 0 is reserved so that
/// `LogPosition::START` lies strictly before every segment.
const FIRST_SEGMENT: u64 = 1;
const SEGMENT_FILE_PREFIX: &str = "wal-";
const SEGMENT_FILE_SUFFIX: &str = ".log";
const SEGMENT_FILE_DIGITS: usize = 20;
/// The append buffer keeps its capacity between calls (to avoid reallocating on every group
/// commit) unless one huge append grew it past this size.
const WRITE_BUF_RETAIN_BYTES: usize = 4 * 1024 * 1024;

/// A position in the log: records are totally ordered by it. `LogPosition::START` is before
/// everything.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct LogPosition {
    /// The segment the record lives in.
    pub segment: u64,
    /// The byte offset just past the end of the record inside its segment.
    pub offset: u64,
}

impl LogPosition {
    /// Before every record of every log.
    pub const START: LogPosition = LogPosition {
        segment: 0,
        offset: 0,
    };
}

impl fmt::Display for LogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.segment, self.offset)
    }
}

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The operating system refused an operation; `context` names what the log was doing.
    #[error("event log I/O failed: {context}")]
    Io {
        context: &'static str,
        source: io::Error,
    },
    /// An earlier append failed and could not be rolled back, so the tail of the log is in an
    /// unknown state; the log refuses appends until it is reopened (which re-validates the tail).
    #[error(
        "event log is poisoned by an append that could not be rolled back; every later append retries the rollback first, so it heals once the disk accepts writes again"
    )]
    Poisoned,
    /// A record is larger than `FileLogOptions::record_bytes_max`; nothing was written.
    #[error("event log record of {bytes} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge { bytes: u64, max: u32 },
}

impl LogError {
    /// Whether the failure is the disk (or a quota) being full, which an operator can fix
    /// without the data being at risk.
    pub fn is_disk_full(&self) -> bool {
        match self {
            LogError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
            ),
            LogError::Poisoned | LogError::RecordTooLarge { .. } => false,
        }
    }
}

/// Builds the `map_err` adapter that attaches what the log was doing to an I/O error.
fn io_context(context: &'static str) -> impl FnOnce(io::Error) -> LogError {
    move |source| LogError::Io { context, source }
}

/// The seam for the event log. The embedded default is [`FileLog`]; a later deployment may put
/// NATS JetStream behind it.
///
/// Semantics:
/// - [`append`](EventLog::append): when it returns `Ok`, every record of the call is durable
///   (it survives `kill -9` and power loss on a disk whose fsync is honest) and will be returned
///   by every later replay, in append order, after the records of all earlier successful
///   appends. The returned position is the end of the last record of the call; positions only
///   grow. When it returns `Err`, none of the records of the call will ever be replayed: the
///   implementation rolls back (truncates to the length before the call and fsyncs). If even the
///   rollback fails, the implementation poisons itself: it refuses appends until it has
///   re-established its durable end, which every later append first retries (for [`FileLog`]:
///   reopening the active segment, cutting it back to its durable length and fsyncing), so the
///   log heals by itself once the disk accepts writes again; until then appends return
///   [`LogError::Poisoned`]. If the process dies while poisoned, the fate of the failed call's
///   records is unknown: a reopen may find some of them intact and replay them. Callers must
///   therefore treat a failed append as "not accepted, may reappear after a restart" and rely
///   on dedupe for retried events (replay itself skips an event already seen within the dedupe
///   horizon); a crash in the middle of an append has the same outcome.
///   An empty `records` slice writes nothing and returns [`end`](EventLog::end).
/// - [`replay`](EventLog::replay)`(from, f)`: calls `f(end_position_of_record, payload)` for
///   each intact record whose end position is `> from`, in log order. Corrupt spans that were
///   skipped when the log was opened are skipped again.
/// - [`truncate_before`](EventLog::truncate_before)`(pos)`: the caller no longer needs records
///   ending at or before `pos` (a checkpoint covers them); the implementation may delete whole
///   segments that lie entirely at or before `pos`. Records after `pos` are never deleted, and
///   records at or before it may still be replayed (the caller filters with `from`).
/// - [`end`](EventLog::end): the end position of the last durable record (or a position
///   equivalent to it, such as the start of an empty segment); a replay from it yields nothing.
/// - [`move_end_past`](EventLog::move_end_past)`(pos)`: makes every later append end strictly
///   after `pos`. Recovery calls it with the loaded checkpoint's position: when corruption cut
///   the log back to before that position, new records must not get positions a later replay
///   from the checkpoint would skip.
/// - [`complete_from_start`](EventLog::complete_from_start): whether the log still holds every
///   record ever appended (nothing was truncated away), so replaying it from
///   [`LogPosition::START`] rebuilds everything without a checkpoint.
pub trait EventLog: Send {
    /// Appends `records` atomically and durably; returns the end of the last record.
    fn append(&mut self, records: &[&[u8]]) -> Result<LogPosition, LogError>;
    /// Feeds every intact record ending after `from` to `f`, in order.
    fn replay(
        &mut self,
        from: LogPosition,
        f: &mut dyn FnMut(LogPosition, &[u8]),
    ) -> Result<(), LogError>;
    /// Allows deleting whole segments whose records all end at or before `pos`.
    fn truncate_before(&mut self, pos: LogPosition) -> Result<(), LogError>;
    /// The end position of the last durable record.
    fn end(&self) -> LogPosition;
    /// Makes every later append end strictly after `pos`.
    fn move_end_past(&mut self, pos: LogPosition) -> Result<(), LogError>;
    /// Whether every record ever appended is still in the log.
    fn complete_from_start(&self) -> bool {
        false
    }
}

/// Tuning for [`FileLog`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileLogOptions {
    /// An append that would grow a non-empty segment past this many bytes goes to a new
    /// segment instead. A single append larger than this still lands in one segment.
    pub segment_bytes_max: u64,
    /// Appends carrying a larger record fail with [`LogError::RecordTooLarge`]. Reading does not
    /// enforce it, so lowering it never makes existing records unreadable.
    pub record_bytes_max: u32,
}

impl Default for FileLogOptions {
    fn default() -> Self {
        FileLogOptions {
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            record_bytes_max: RECORD_BYTES_MAX_DEFAULT,
        }
    }
}

/// What [`FileLog::open`] found and what it dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files in the log after opening.
    pub segments: u64,
    /// Intact records found.
    pub records: u64,
    /// Bytes of intact records, framing included.
    pub bytes: u64,
    /// Bytes cut from the end of the last segment: the remains of an append that was in flight
    /// when the process or machine died (never acknowledged, so nothing durable was lost).
    pub torn_tail_bytes: u64,
    /// Corrupt spans skipped between intact records (or at the end of a segment that is not the
    /// last one, where no append can have been in flight).
    pub corrupt_records_skipped: u64,
    /// Bytes in those corrupt spans. They are left on disk for forensics.
    pub corrupt_bytes_skipped: u64,
}

impl RecoveryReport {
    /// Whether opening dropped nothing at all.
    pub fn is_clean(&self) -> bool {
        self.torn_tail_bytes == 0 && self.corrupt_records_skipped == 0
    }
}

/// A segment's number and its length in bytes up to the end of its last intact record (or its
/// file length when corrupt bytes trail it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    id: u64,
    len: u64,
}

impl Segment {
    /// Whether every record in this segment ends at or before `pos`.
    fn lies_before(&self, pos: LogPosition) -> bool {
        self.id < pos.segment || (self.id == pos.segment && self.len <= pos.offset)
    }
}

/// The embedded event log: append-only segment files in one directory. See [`EventLog`] for the
/// guarantees and the module documentation for the format.
#[derive(Debug)]
pub struct FileLog {
    dir: PathBuf,
    options: FileLogOptions,
    /// Segments no longer appended to, oldest first.
    closed: VecDeque<Segment>,
    /// The segment appends go to; `active.len` is its durable length.
    active: Segment,
    /// Write handle on the active segment, positioned at `active.len`.
    file: File,
    poisoned: bool,
    /// Reused between appends so a group commit does not allocate.
    write_buf: Vec<u8>,
}

impl FileLog {
    /// Opens (creating if needed) the log in `dir`, validating every segment: a torn tail of the
    /// last segment is truncated away (durably), corrupt spans elsewhere are skipped, and
    /// nothing intact is dropped. The report says what was dropped.
    pub fn open(
        dir: &Path,
        options: FileLogOptions,
    ) -> Result<(FileLog, RecoveryReport), LogError> {
        crate::private::create_dir(dir).map_err(io_context("create log directory"))?;
        let mut ids = list_segments(dir)?;
        if ids.is_empty() {
            create_segment(dir, FIRST_SEGMENT)?;
            ids.push(FIRST_SEGMENT);
        }
        warn_on_gaps(&ids);
        let mut report = RecoveryReport {
            segments: ids.len() as u64,
            ..RecoveryReport::default()
        };
        let mut closed = VecDeque::with_capacity(ids.len());
        let mut buf = Vec::new();
        let (&last_id, older_ids) = ids.split_last().expect("at least one segment exists");
        for &id in older_ids {
            let scan = scan_file(dir, id, &mut buf, &mut report)?;
            closed.push_back(recover_closed_segment(
                id,
                buf.len() as u64,
                scan,
                &mut report,
            ));
        }
        let scan = scan_file(dir, last_id, &mut buf, &mut report)?;
        let (file, active) =
            recover_last_segment(dir, last_id, buf.len() as u64, scan, &mut report)?;
        let log = FileLog {
            dir: dir.to_path_buf(),
            options,
            closed,
            active,
            file,
            poisoned: false,
            write_buf: Vec::new(),
        };
        Ok((log, report))
    }

    /// Fails without writing anything when any record is over the configured maximum.
    fn check_record_sizes(&self, records: &[&[u8]]) -> Result<(), LogError> {
        let max = self.options.record_bytes_max;
        match records.iter().find(|r| r.len() as u64 > u64::from(max)) {
            Some(r) => Err(LogError::RecordTooLarge {
                bytes: r.len() as u64,
                max,
            }),
            None => Ok(()),
        }
    }

    /// Frames all records of one append into `write_buf`, so the call costs a single write.
    fn encode(&mut self, records: &[&[u8]]) {
        self.write_buf.clear();
        let total: usize = records.iter().map(|r| RECORD_HEADER_BYTES + r.len()).sum();
        self.write_buf.reserve(total);
        for record in records {
            encode_record(&mut self.write_buf, record);
        }
    }

    /// Starts a new segment when appending `incoming` bytes would push a non-empty active
    /// segment past the maximum. The old segment needs no fsync: every append already synced it.
    fn rotate_if_needed(&mut self, incoming: u64) -> Result<(), LogError> {
        let fits = self.active.len.saturating_add(incoming) <= self.options.segment_bytes_max;
        if self.active.len == 0 || fits {
            return Ok(());
        }
        let next = self.active.id + 1;
        self.file = create_segment(&self.dir, next)?;
        self.closed.push_back(self.active);
        self.active = Segment { id: next, len: 0 };
        Ok(())
    }

    /// Writes the framed records and makes them durable.
    fn write_and_sync(&mut self) -> Result<(), LogError> {
        self.file
            .write_all(&self.write_buf)
            .map_err(io_context("write records"))?;
        self.file.sync_data().map_err(io_context("fsync records"))
    }

    /// Undoes a failed append by cutting the segment back to its durable length, so that no
    /// part of the failed call can ever be replayed. Poisons the log when that fails too.
    fn roll_back(&mut self) {
        let len = self.active.len;
        let result = self
            .file
            .set_len(len)
            .and_then(|()| self.file.sync_data())
            .and_then(|()| self.file.seek(SeekFrom::Start(len)).map(drop));
        if let Err(error) = result {
            tracing::error!(
                segment = self.active.id,
                len,
                %error,
                "event log: rolling back a failed append failed; poisoning the log until reopen"
            );
            self.poisoned = true;
        }
    }

    /// Tries to leave the poisoned state: reopens the active segment, cuts it back to its durable
    /// length and fsyncs, exactly what the failed rollback could not do. Whatever the failed
    /// append left behind is then gone for good, so the in-memory view (which never applied it)
    /// and the disk agree again. Returns whether the log is usable.
    fn heal(&mut self) -> bool {
        let path = segment_path(&self.dir, self.active.id);
        let len = self.active.len;
        let result = OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut file| {
                file.set_len(len)?;
                file.sync_data()?;
                file.seek(SeekFrom::Start(len))?;
                Ok(file)
            });
        match result {
            Ok(file) => {
                tracing::warn!(
                    segment = self.active.id,
                    len,
                    "event log: recovered from a failed rollback; accepting appends again"
                );
                self.file = file;
                self.poisoned = false;
                true
            }
            Err(error) => {
                tracing::debug!(%error, "event log: still poisoned");
                false
            }
        }
    }

    /// Starts a new, empty segment numbered after both the active one and `after`.
    fn start_segment_after(&mut self, after: u64) -> Result<(), LogError> {
        let next = self.active.id.max(after) + 1;
        let file = create_segment(&self.dir, next)?;
        self.file = file;
        self.closed.push_back(self.active);
        self.active = Segment { id: next, len: 0 };
        Ok(())
    }

    /// Drops a huge append buffer so one outsized batch does not pin memory forever.
    fn trim_write_buf(&mut self) {
        if self.write_buf.capacity() > WRITE_BUF_RETAIN_BYTES {
            self.write_buf = Vec::new();
        }
    }

    /// Every segment in log order, the active one last.
    fn segments(&self) -> Vec<Segment> {
        self.closed.iter().copied().chain([self.active]).collect()
    }
}

impl EventLog for FileLog {
    fn append(&mut self, records: &[&[u8]]) -> Result<LogPosition, LogError> {
        if self.poisoned && !self.heal() {
            return Err(LogError::Poisoned);
        }
        self.check_record_sizes(records)?;
        if records.is_empty() {
            return Ok(self.end());
        }
        let before = self.end();
        self.encode(records);
        let incoming = self.write_buf.len() as u64;
        self.rotate_if_needed(incoming)?;
        let written = self.write_and_sync();
        if written.is_err() {
            self.roll_back();
        } else {
            self.active.len += incoming;
        }
        self.trim_write_buf();
        debug_assert!(
            if written.is_ok() {
                self.end() > before
            } else {
                self.end() >= before
            },
            "the log's end only moves forward, and past every appended record"
        );
        written.map(|()| self.end())
    }

    fn replay(
        &mut self,
        from: LogPosition,
        f: &mut dyn FnMut(LogPosition, &[u8]),
    ) -> Result<(), LogError> {
        let mut buf = Vec::new();
        for segment in self.segments() {
            if segment.lies_before(from) {
                continue;
            }
            read_segment(&segment_path(&self.dir, segment.id), segment.len, &mut buf)?;
            scan_segment(&buf, |offset, payload| {
                let pos = LogPosition {
                    segment: segment.id,
                    offset,
                };
                if pos > from {
                    f(pos, payload);
                }
            });
        }
        Ok(())
    }

    fn truncate_before(&mut self, pos: LogPosition) -> Result<(), LogError> {
        // Oldest first, so that a crash part-way leaves a contiguous suffix of segments. The
        // directory is not fsynced: a deletion that is lost in a crash only costs disk space.
        while let Some(&oldest) = self.closed.front() {
            if !oldest.lies_before(pos) {
                break;
            }
            match fs::remove_file(segment_path(&self.dir, oldest.id)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_context("delete segment")(e)),
            }
            self.closed.pop_front();
        }
        Ok(())
    }

    fn end(&self) -> LogPosition {
        LogPosition {
            segment: self.active.id,
            offset: self.active.len,
        }
    }

    fn move_end_past(&mut self, pos: LogPosition) -> Result<(), LogError> {
        if self.end() >= pos {
            return Ok(());
        }
        tracing::warn!(
            end = %self.end(),
            checkpoint = %pos,
            "event log: ends before the checkpoint it is replayed from (records were cut as corrupt); continuing in a new segment"
        );
        self.start_segment_after(pos.segment)
    }

    fn complete_from_start(&self) -> bool {
        let segments = self.segments();
        segments[0].id == FIRST_SEGMENT && segments.windows(2).all(|w| w[1].id == w[0].id + 1)
    }
}

/// Appends one framed record to `buf`. The caller has checked that the length fits in a u32.
fn encode_record(buf: &mut Vec<u8>, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("record size checked against a u32 maximum");
    let len_bytes = len.to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len_bytes), payload);
    buf.extend_from_slice(&RECORD_MAGIC_BYTES);
    buf.extend_from_slice(&len_bytes);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// The payload of the record starting at `start`, if an intact record starts there.
fn record_at(bytes: &[u8], start: usize) -> Option<&[u8]> {
    let header = bytes.get(start..start.checked_add(RECORD_HEADER_BYTES)?)?;
    let word = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes"));
    if word(0) != RECORD_MAGIC {
        return None;
    }
    let payload_start = start + RECORD_HEADER_BYTES;
    let payload_end = payload_start.checked_add(word(4) as usize)?;
    let payload = bytes.get(payload_start..payload_end)?;
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[4..8]), payload);
    (crc == word(8)).then_some(payload)
}

/// The start of the first intact record at or after `from`, found by trying every occurrence
/// of the magic in turn (a byte-by-byte resynchronisation, sped up by searching for the magic).
fn next_record_start(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at < bytes.len() {
        let found = bytes[at..]
            .windows(RECORD_MAGIC_BYTES.len())
            .position(|w| w == RECORD_MAGIC_BYTES)?;
        let candidate = at + found;
        if record_at(bytes, candidate).is_some() {
            return Some(candidate);
        }
        at = candidate + 1;
    }
    None
}

/// What one pass over a segment's bytes found besides the intact records.
#[derive(Debug, Default, PartialEq, Eq)]
struct SegmentScan {
    records: u64,
    record_bytes: u64,
    /// `[start, end)` byte spans skipped between intact records.
    corrupt_spans: Vec<(u64, u64)>,
    /// Where the trailing bytes that hold no intact record begin, if there are any.
    tail_start: Option<u64>,
}

/// Walks a segment's bytes, calling `on_record(end_offset, payload)` for each intact record in
/// order and resynchronising past corrupt spans. Deterministic, so open and replay agree on
/// exactly which records exist.
fn scan_segment(bytes: &[u8], mut on_record: impl FnMut(u64, &[u8])) -> SegmentScan {
    let mut scan = SegmentScan::default();
    let mut pos = 0;
    while pos < bytes.len() {
        if let Some(payload) = record_at(bytes, pos) {
            let end = pos + RECORD_HEADER_BYTES + payload.len();
            on_record(end as u64, payload);
            scan.records += 1;
            scan.record_bytes += (end - pos) as u64;
            pos = end;
            continue;
        }
        match next_record_start(bytes, pos + 1) {
            Some(next) => {
                scan.corrupt_spans.push((pos as u64, next as u64));
                pos = next;
            }
            None => {
                scan.tail_start = Some(pos as u64);
                break;
            }
        }
    }
    scan
}

/// Reads and scans one segment file at open, adding its intact records to the report and
/// warning about each corrupt span in its middle. The file's bytes are left in `buf`.
fn scan_file(
    dir: &Path,
    id: u64,
    buf: &mut Vec<u8>,
    report: &mut RecoveryReport,
) -> Result<SegmentScan, LogError> {
    read_segment(&segment_path(dir, id), u64::MAX, buf)?;
    let scan = scan_segment(buf, |_, _| {});
    report.records += scan.records;
    report.bytes += scan.record_bytes;
    for &(start, end) in &scan.corrupt_spans {
        tracing::warn!(
            segment = id,
            start,
            bytes = end - start,
            "event log: skipping a corrupt span"
        );
        report.corrupt_records_skipped += 1;
        report.corrupt_bytes_skipped += end - start;
    }
    Ok(scan)
}

/// Accounts for trailing garbage in a segment that is not the last. No append can have been in
/// flight there (a segment is only left behind after its last append was fsynced), so the bytes
/// are corruption, not a torn write; they are skipped but kept on disk.
fn recover_closed_segment(
    id: u64,
    len: u64,
    scan: SegmentScan,
    report: &mut RecoveryReport,
) -> Segment {
    if let Some(tail) = scan.tail_start {
        tracing::warn!(
            segment = id,
            start = tail,
            bytes = len - tail,
            "event log: skipping corrupt bytes at the end of a closed segment"
        );
        report.corrupt_records_skipped += 1;
        report.corrupt_bytes_skipped += len - tail;
    }
    Segment { id, len }
}

/// Opens the last segment for appending, durably cutting off a torn tail first: the remains of
/// an append that never returned, which must not be replayed nor have new records written after
/// them.
fn recover_last_segment(
    dir: &Path,
    id: u64,
    len: u64,
    scan: SegmentScan,
    report: &mut RecoveryReport,
) -> Result<(File, Segment), LogError> {
    let mut file = OpenOptions::new()
        .write(true)
        .open(segment_path(dir, id))
        .map_err(io_context("open last segment"))?;
    let mut durable_len = len;
    if let Some(tail) = scan.tail_start {
        tracing::warn!(
            segment = id,
            start = tail,
            bytes = len - tail,
            "event log: truncating a torn tail"
        );
        file.set_len(tail)
            .map_err(io_context("truncate torn tail"))?;
        file.sync_data()
            .map_err(io_context("fsync torn tail truncation"))?;
        report.torn_tail_bytes = len - tail;
        durable_len = tail;
    }
    file.seek(SeekFrom::Start(durable_len))
        .map_err(io_context("seek to end of last segment"))?;
    Ok((
        file,
        Segment {
            id,
            len: durable_len,
        },
    ))
}

/// Reads at most `limit` bytes of a segment into `buf` in one go: segments are parsed in
/// memory, which is what makes replay fast. The limit also keeps replay from reading past the
/// durable end of the active segment.
fn read_segment(path: &Path, limit: u64, buf: &mut Vec<u8>) -> Result<(), LogError> {
    let file = File::open(path).map_err(io_context("open segment"))?;
    let file_len = file.metadata().map_err(io_context("stat segment"))?.len();
    let len = file_len.min(limit);
    buf.clear();
    buf.reserve(usize::try_from(len).unwrap_or(usize::MAX));
    file.take(len)
        .read_to_end(buf)
        .map_err(io_context("read segment"))?;
    Ok(())
}

/// Creates (or empties) a segment file, private to the server's user, and makes its directory
/// entry durable, so that a crash cannot lose the file holding records that an append later
/// reports as durable.
fn create_segment(dir: &Path, id: u64) -> Result<File, LogError> {
    let file = crate::private::file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(segment_path(dir, id))
        .map_err(io_context("create segment"))?;
    sync_dir(dir).map_err(io_context("fsync log directory"))?;
    Ok(file)
}

/// The file name of segment `id`.
fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!(
        "{SEGMENT_FILE_PREFIX}{id:0SEGMENT_FILE_DIGITS$}{SEGMENT_FILE_SUFFIX}"
    ))
}

/// The segment number encoded in a file name, if it is a segment file name.
fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(SEGMENT_FILE_PREFIX)?
        .strip_suffix(SEGMENT_FILE_SUFFIX)?;
    let well_formed =
        digits.len() == SEGMENT_FILE_DIGITS && digits.bytes().all(|b| b.is_ascii_digit());
    well_formed.then(|| digits.parse().ok()).flatten()
}

/// The segment numbers present in `dir`, ascending.
fn list_segments(dir: &Path) -> Result<Vec<u64>, LogError> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_context("list log directory"))? {
        let entry = entry.map_err(io_context("list log directory"))?;
        if let Some(id) = entry.file_name().to_str().and_then(parse_segment_name) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Segments are numbered consecutively and only ever deleted oldest first, so a gap means
/// someone removed files by hand: the records in them are gone. Say so loudly.
fn warn_on_gaps(ids: &[u64]) {
    for pair in ids.windows(2) {
        if pair[1] != pair[0] + 1 {
            tracing::warn!(
                after = pair[0],
                before = pair[1],
                "event log: segments are missing"
            );
        }
    }
}

/// Makes the creation, rename or deletion of files in `dir` durable. Directories cannot be
/// opened for syncing on every platform; where they cannot, this is a no-op.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_reject_lookalikes() {
        let name = segment_path(Path::new(""), 42).to_str().unwrap().to_owned();
        assert_eq!(name, "wal-00000000000000000042.log");
        assert_eq!(parse_segment_name(&name), Some(42));
        for bad in [
            "wal-42.log",
            "wal-0000000000000000004x.log",
            "wal-00000000000000000042.log.tmp",
            "x.log",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn scan_resynchronises_after_garbage_and_reports_the_tail() {
        let mut bytes = Vec::new();
        encode_record(&mut bytes, b"one");
        let garbage_start = bytes.len() as u64;
        bytes.extend_from_slice(&[0xAB; 7]);
        let second_start = bytes.len() as u64;
        encode_record(&mut bytes, b"two");
        let tail_start = bytes.len() as u64;
        bytes.extend_from_slice(&RECORD_MAGIC_BYTES);
        let mut seen = Vec::new();
        let scan = scan_segment(&bytes, |end, payload| seen.push((end, payload.to_vec())));
        assert_eq!(
            seen,
            vec![(15, b"one".to_vec()), (tail_start, b"two".to_vec())]
        );
        assert_eq!(scan.corrupt_spans, vec![(garbage_start, second_start)]);
        assert_eq!(scan.tail_start, Some(tail_start));
    }

    #[test]
    fn a_poisoned_log_heals_on_the_next_append_and_drops_the_failed_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = FileLog::open(dir.path(), FileLogOptions::default()).unwrap();
        log.append(&[b"one"]).unwrap();
        // A failed append whose rollback failed too: its bytes are on disk, the log poisoned.
        let mut leftover = Vec::new();
        encode_record(&mut leftover, b"failed");
        log.file.write_all(&leftover).unwrap();
        log.poisoned = true;
        // The disk is fine again: the next append heals first, cutting the leftover away.
        log.append(&[b"two"]).unwrap();
        assert!(!log.poisoned);
        let mut seen = Vec::new();
        log.replay(LogPosition::START, &mut |_, p| seen.push(p.to_vec()))
            .unwrap();
        assert_eq!(seen, vec![b"one".to_vec(), b"two".to_vec()]);
        drop(log);
        let (mut log, report) = FileLog::open(dir.path(), FileLogOptions::default()).unwrap();
        assert!(report.is_clean());
        let mut seen = Vec::new();
        log.replay(LogPosition::START, &mut |_, p| seen.push(p.to_vec()))
            .unwrap();
        assert_eq!(seen, vec![b"one".to_vec(), b"two".to_vec()]);
    }

    #[test]
    fn moving_the_end_past_a_position_starts_a_later_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = FileLog::open(dir.path(), FileLogOptions::default()).unwrap();
        let end = log.append(&[b"one"]).unwrap();
        assert!(log.complete_from_start());
        let ahead = LogPosition {
            segment: end.segment,
            offset: end.offset + 100,
        };
        log.move_end_past(ahead).unwrap();
        let next = log.append(&[b"two"]).unwrap();
        assert!(next > ahead, "{next} > {ahead}");
        // Already past: nothing changes.
        log.move_end_past(end).unwrap();
        assert_eq!(log.end(), next);
    }
}
