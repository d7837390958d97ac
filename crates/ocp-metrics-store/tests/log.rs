//! Behaviour of `FileLog` through its public API and the files it leaves on disk: round trips,
//! recovery from torn tails and corruption, segment deletion, and failed appends.

use std::fs;
use std::path::{Path, PathBuf};

use ocp_metrics_store::{EventLog, FileLog, FileLogOptions, LogError, LogPosition, RecoveryReport};
use proptest::prelude::*;

/// Bytes of framing in front of every payload (magic, len, crc).
const HEADER_BYTES: u64 = 12;

type Replayed = Vec<(LogPosition, Vec<u8>)>;

fn options(segment_bytes_max: u64) -> FileLogOptions {
    FileLogOptions {
        segment_bytes_max,
        ..FileLogOptions::default()
    }
}

fn open(dir: &Path, segment_bytes_max: u64) -> (FileLog, RecoveryReport) {
    FileLog::open(dir, options(segment_bytes_max)).unwrap()
}

/// A recognisable payload of varying length; plain ASCII so it never contains the magic.
fn payload(i: usize) -> Vec<u8> {
    format!("record-{i:04}-{}", "x".repeat(i % 23)).into_bytes()
}

fn replay(log: &mut FileLog, from: LogPosition) -> Replayed {
    let mut out = Vec::new();
    log.replay(from, &mut |pos, bytes| out.push((pos, bytes.to_vec())))
        .unwrap();
    out
}

fn payloads(replayed: &Replayed) -> Vec<Vec<u8>> {
    replayed.iter().map(|(_, bytes)| bytes.clone()).collect()
}

/// Appends `count` payloads one call each, returning what a replay should yield.
fn append_each(log: &mut FileLog, range: std::ops::Range<usize>) -> Replayed {
    range
        .map(|i| {
            let bytes = payload(i);
            (log.append(&[&bytes]).unwrap(), bytes)
        })
        .collect()
}

/// Segment file names in `dir`, sorted.
fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("wal-"))
        .collect();
    names.sort();
    names
}

fn segment_file(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("wal-{segment:020}.log"))
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn round_trips_across_segment_rotation() {
    // (segment_bytes_max, batch sizes, minimum segments expected)
    let cases: &[(u64, &[usize], usize)] = &[
        (64 << 20, &[1, 5, 1000], 1),
        (30, &[1, 1, 1, 1, 1, 1], 6),
        (300, &[3, 7, 1, 10, 2], 3),
        (0, &[2, 2, 2], 3),
    ];
    for &(segment_bytes_max, batches, min_segments) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path(), segment_bytes_max);
        let mut expected = Vec::new();
        let mut last_end = LogPosition::START;
        for &size in batches {
            let batch: Vec<Vec<u8>> = (expected.len()..expected.len() + size)
                .map(payload)
                .collect();
            let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            let end = log.append(&refs).unwrap();
            assert!(end > last_end, "positions grow: {end} after {last_end}");
            assert_eq!(end, log.end());
            last_end = end;
            expected.extend(batch);
        }
        let replayed = replay(&mut log, LogPosition::START);
        assert_eq!(payloads(&replayed), expected, "case {segment_bytes_max}");
        assert_eq!(replayed.last().unwrap().0, last_end);
        assert!(replayed.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(
            segment_files(dir.path()).len() >= min_segments,
            "case {segment_bytes_max}"
        );
        drop(log);

        let (mut log, report) = open(dir.path(), segment_bytes_max);
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.records, expected.len() as u64);
        assert_eq!(report.segments, segment_files(dir.path()).len() as u64);
        assert_eq!(replay(&mut log, LogPosition::START), replayed);
        assert_eq!(log.end(), last_end);
    }
}

#[test]
fn reopen_appends_after_the_existing_end() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path(), 200);
    let mut expected = append_each(&mut log, 0..10);
    let end = log.end();
    drop(log);

    let (mut log, report) = open(dir.path(), 200);
    assert!(report.is_clean());
    assert_eq!(log.end(), end);
    expected.extend(append_each(&mut log, 10..20));
    assert!(expected[10].0 > end);
    assert_eq!(replay(&mut log, LogPosition::START), expected);
    drop(log);

    let (mut log, _) = open(dir.path(), 200);
    assert_eq!(replay(&mut log, LogPosition::START), expected);
}

#[test]
fn empty_and_oversized_appends_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log_options = FileLogOptions {
        record_bytes_max: 16,
        ..FileLogOptions::default()
    };
    let (mut log, _) = FileLog::open(dir.path(), log_options).unwrap();
    let first = log.append(&[b"ok"]).unwrap();
    assert_eq!(log.append(&[]).unwrap(), first);
    let error = log.append(&[b"fine", &[7u8; 17]]).unwrap_err();
    assert!(
        matches!(error, LogError::RecordTooLarge { bytes: 17, max: 16 }),
        "{error:?}"
    );
    assert!(!error.is_disk_full());
    assert_eq!(log.end(), first);
    let second = log.append(&[&[7u8; 16]]).unwrap();
    assert_eq!(
        payloads(&replay(&mut log, LogPosition::START)),
        vec![b"ok".to_vec(), vec![7u8; 16]]
    );
    assert_eq!(second, log.end());
}

#[test]
fn replay_from_skips_records_at_or_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path(), 150);
    let all = append_each(&mut log, 0..12);
    let pos = |i: usize| all[i].0;
    let before = |p: LogPosition| LogPosition {
        offset: p.offset - 1,
        ..p
    };
    // (from, index of the first record expected)
    let cases = [
        (LogPosition::START, 0),
        (pos(0), 1),
        (before(pos(0)), 0),
        (pos(5), 6),
        (before(pos(5)), 5),
        (
            LogPosition {
                segment: pos(11).segment,
                offset: 0,
            },
            all.iter()
                .position(|r| r.0.segment == pos(11).segment)
                .unwrap(),
        ),
        (pos(11), 12),
        (
            LogPosition {
                segment: u64::MAX,
                offset: 0,
            },
            12,
        ),
    ];
    for (from, first) in cases {
        assert_eq!(replay(&mut log, from), all[first..].to_vec(), "from {from}");
    }
}

#[test]
fn torn_tail_at_every_offset_of_the_last_two_records_is_cut_away() {
    let original = tempfile::tempdir().unwrap();
    let (mut log, _) = open(original.path(), 200);
    let all = append_each(&mut log, 0..11);
    drop(log);
    let last_segment = all.last().unwrap().0.segment;
    let in_last: Vec<_> = all.iter().filter(|r| r.0.segment == last_segment).collect();
    assert!(
        in_last.len() >= 3,
        "the test needs two records after a first one in the last segment"
    );
    let first_cut = in_last[in_last.len() - 3].0.offset;
    let full_len = in_last.last().unwrap().0.offset;

    for cut in first_cut..=full_len {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(original.path(), dir.path());
        let file = fs::OpenOptions::new()
            .write(true)
            .open(segment_file(dir.path(), last_segment))
            .unwrap();
        file.set_len(cut).unwrap();
        drop(file);

        let intact: Replayed = all
            .iter()
            .filter(|r| r.0.segment < last_segment || r.0.offset <= cut)
            .cloned()
            .collect();
        let boundary = intact.last().unwrap().0;
        let (mut log, report) = open(dir.path(), 200);
        let expected_report = RecoveryReport {
            segments: segment_files(original.path()).len() as u64,
            records: intact.len() as u64,
            bytes: intact.iter().map(|r| HEADER_BYTES + r.1.len() as u64).sum(),
            torn_tail_bytes: cut - boundary.offset,
            ..RecoveryReport::default()
        };
        assert_eq!(report, expected_report, "cut at {cut}");
        assert_eq!(log.end(), boundary, "cut at {cut}");
        assert_eq!(replay(&mut log, LogPosition::START), intact, "cut at {cut}");

        let after = log.append(&[b"after the cut"]).unwrap();
        drop(log);
        let (mut log, report) = open(dir.path(), 200);
        assert!(report.is_clean(), "cut at {cut}: {report:?}");
        let mut expected = intact;
        expected.push((after, b"after the cut".to_vec()));
        assert_eq!(
            replay(&mut log, LogPosition::START),
            expected,
            "cut at {cut}"
        );
    }
}

#[test]
fn a_flipped_bit_in_a_middle_record_loses_only_that_record() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path(), 64 << 20);
    let all = append_each(&mut log, 0..7);
    drop(log);
    let middle = 3;
    let start = all[middle - 1].0.offset as usize;
    let end = all[middle].0.offset as usize;
    let path = segment_file(dir.path(), 1);
    let pristine = fs::read(&path).unwrap();
    let survivors: Replayed = all
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != middle)
        .map(|(_, r)| r.clone())
        .collect();

    for bit in 0..(end - start) * 8 {
        let mut bytes = pristine.clone();
        bytes[start + bit / 8] ^= 1 << (bit % 8);
        fs::write(&path, &bytes).unwrap();
        let (mut log, report) = open(dir.path(), 64 << 20);
        assert_eq!(report.corrupt_records_skipped, 1, "bit {bit}: {report:?}");
        assert_eq!(
            report.corrupt_bytes_skipped,
            (end - start) as u64,
            "bit {bit}"
        );
        assert_eq!(report.torn_tail_bytes, 0, "bit {bit}");
        assert_eq!(report.records, survivors.len() as u64, "bit {bit}");
        assert_eq!(replay(&mut log, LogPosition::START), survivors, "bit {bit}");
        assert_eq!(
            replay(&mut log, all[middle - 1].0),
            survivors[middle..].to_vec(),
            "bit {bit}"
        );
    }

    // Appends continue after a corrupt middle, and the skip stays reported (the bytes are kept).
    let (mut log, _) = open(dir.path(), 64 << 20);
    let after = log.append(&[b"after"]).unwrap();
    drop(log);
    let (mut log, report) = open(dir.path(), 64 << 20);
    assert_eq!(report.corrupt_records_skipped, 1);
    assert_eq!(
        replay(&mut log, LogPosition::START).last().unwrap(),
        &(after, b"after".to_vec())
    );
}

#[test]
fn garbage_at_the_end_of_a_closed_segment_is_skipped_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path(), 100);
    let all = append_each(&mut log, 0..6);
    drop(log);
    let first = segment_file(dir.path(), 1);
    let mut bytes = fs::read(&first).unwrap();
    let len = bytes.len();
    bytes.extend_from_slice(&[0u8; 5]);
    fs::write(&first, &bytes).unwrap();

    let (mut log, report) = open(dir.path(), 100);
    assert_eq!(
        (
            report.corrupt_records_skipped,
            report.corrupt_bytes_skipped,
            report.torn_tail_bytes
        ),
        (1, 5, 0)
    );
    assert_eq!(fs::metadata(&first).unwrap().len(), len as u64 + 5);
    assert_eq!(replay(&mut log, LogPosition::START), all);
}

#[test]
fn truncate_before_deletes_only_whole_old_segments() {
    let original = tempfile::tempdir().unwrap();
    let (mut log, _) = open(original.path(), 100);
    let all = append_each(&mut log, 0..12);
    drop(log);
    let segments = segment_files(original.path());
    assert!(segments.len() >= 4, "{segments:?}");
    let last_of = |segment: u64| all.iter().rev().find(|r| r.0.segment == segment).unwrap().0;
    let first_of = |segment: u64| all.iter().find(|r| r.0.segment == segment).unwrap().0;
    let active = all.last().unwrap().0.segment;
    // (pos, segments expected to remain)
    let cases = [
        (LogPosition::START, 1..=active),
        (first_of(1), 1..=active),
        (last_of(1), 2..=active),
        (
            LogPosition {
                segment: 2,
                offset: 0,
            },
            2..=active,
        ),
        (first_of(3), 3..=active),
        (last_of(active - 1), active..=active),
        (all.last().unwrap().0, active..=active),
        (
            LogPosition {
                segment: u64::MAX,
                offset: u64::MAX,
            },
            active..=active,
        ),
    ];
    for (pos, remaining) in cases {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(original.path(), dir.path());
        let (mut log, _) = open(dir.path(), 100);
        log.truncate_before(pos).unwrap();
        let expected: Vec<String> = remaining.map(|s| format!("wal-{s:020}.log")).collect();
        assert_eq!(segment_files(dir.path()), expected, "pos {pos}");
        let after_pos: Replayed = all.iter().filter(|r| r.0 > pos).cloned().collect();
        assert_eq!(replay(&mut log, pos), after_pos, "pos {pos}");
        // The log stays usable, and a reopen agrees.
        let end = log.append(&[b"more"]).unwrap();
        drop(log);
        let (mut log, report) = open(dir.path(), 100);
        assert!(report.is_clean());
        assert_eq!(
            replay(&mut log, LogPosition::START).last().unwrap(),
            &(end, b"more".to_vec())
        );
    }
}

/// Writes to /dev/full fail with ENOSPC and it cannot be truncated, so a segment that is a
/// symlink to it exercises both a failed append and a failed rollback.
#[cfg(target_os = "linux")]
#[test]
fn a_failed_append_whose_rollback_fails_poisons_the_log() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/full", segment_file(dir.path(), 1)).unwrap();
    let (mut log, report) = open(dir.path(), 64 << 20);
    assert!(report.is_clean());
    let error = log.append(&[b"lost"]).unwrap_err();
    assert!(error.is_disk_full(), "{error:?}");
    assert_eq!(
        log.end(),
        LogPosition {
            segment: 1,
            offset: 0
        }
    );
    assert!(matches!(log.append(&[b"again"]), Err(LogError::Poisoned)));
    assert_eq!(replay(&mut log, LogPosition::START), Vec::new());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn random_payload_sets_round_trip(
        records in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..40),
        batch_sizes in prop::collection::vec(1usize..8, 1..40),
        segment_bytes_max in 0u64..2048,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path(), segment_bytes_max);
        let mut rest: &[Vec<u8>] = &records;
        for size in batch_sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (batch, tail) = rest.split_at((*size).min(rest.len()));
            let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            log.append(&refs).unwrap();
            rest = tail;
        }
        let replayed = replay(&mut log, LogPosition::START);
        prop_assert_eq!(payloads(&replayed), records.clone());
        drop(log);
        let (mut log, report) = open(dir.path(), segment_bytes_max);
        prop_assert!(report.is_clean());
        prop_assert_eq!(replay(&mut log, LogPosition::START), replayed);
    }
}
