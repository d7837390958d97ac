//! Behaviour of `FileCheckpoints`: round trips, pruning, fallback past torn or corrupt files,
//! cleanup of unfinished saves, and the retention position it hands the log.

use std::fs;
use std::path::{Path, PathBuf};

use ocp_metrics_store::{
    Checkpoint, CheckpointError, CheckpointStore, FileCheckpoints, LogPosition,
};

/// Size of the fixed header in front of the payload.
const HEADER_BYTES: usize = 36;

fn pos(segment: u64, offset: u64) -> LogPosition {
    LogPosition { segment, offset }
}

fn checkpoint_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn file_name(seq: u64) -> String {
    format!("checkpoint-{seq:020}.bin")
}

fn path_of(dir: &Path, seq: u64) -> PathBuf {
    dir.join(file_name(seq))
}

fn loaded(pos: LogPosition, bytes: &[u8], skipped_corrupt: u32) -> Option<Checkpoint> {
    Some(Checkpoint {
        pos,
        bytes: bytes.to_vec(),
        skipped_corrupt,
    })
}

#[test]
fn an_empty_store_has_nothing_and_retains_everything() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileCheckpoints::open(&dir.path().join("created")).unwrap();
    assert_eq!(store.load_latest().unwrap(), None);
    assert_eq!(store.retain_from(), LogPosition::START);
}

#[test]
fn saves_round_trip_keep_the_two_newest_and_retain_from_the_oldest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileCheckpoints::open(dir.path()).unwrap();
    // (pos, payload, files on disk after the save, retain_from after the save)
    let steps: [(LogPosition, &[u8], &[u64], LogPosition); 4] = [
        (pos(1, 100), b"first", &[1], pos(1, 100)),
        (pos(1, 200), b"", &[1, 2], pos(1, 100)),
        (pos(2, 50), b"third", &[2, 3], pos(1, 200)),
        (pos(3, 10), &[0xFF; 5000], &[3, 4], pos(2, 50)),
    ];
    for (at, payload, files, retain) in steps {
        store.save(at, payload).unwrap();
        let expected_files: Vec<String> = files.iter().map(|&s| file_name(s)).collect();
        assert_eq!(
            checkpoint_files(dir.path()),
            expected_files,
            "after saving {at}"
        );
        assert_eq!(store.retain_from(), retain, "after saving {at}");
        assert_eq!(store.load_latest().unwrap(), loaded(at, payload, 0));
    }
    // A reopened store sees the same and continues the sequence.
    let mut store = FileCheckpoints::open(dir.path()).unwrap();
    assert_eq!(store.retain_from(), pos(2, 50));
    assert_eq!(
        store.load_latest().unwrap(),
        loaded(pos(3, 10), &[0xFF; 5000], 0)
    );
    store.save(pos(4, 0), b"fifth").unwrap();
    assert_eq!(
        checkpoint_files(dir.path()),
        vec![file_name(4), file_name(5)]
    );
    assert_eq!(store.load_latest().unwrap(), loaded(pos(4, 0), b"fifth", 0));
}

/// Damages a checkpoint file in place.
type Damage = fn(&mut Vec<u8>);

#[test]
fn a_torn_or_corrupt_newest_checkpoint_falls_back_to_the_older_one() {
    let cases: &[(&str, Damage)] = &[
        ("empty file", |b| b.clear()),
        ("torn header", |b| b.truncate(HEADER_BYTES - 1)),
        ("header only", |b| b.truncate(HEADER_BYTES)),
        ("torn payload", |b| b.truncate(b.len() - 1)),
        ("trailing byte", |b| b.push(0)),
        ("bad magic", |b| b[0] ^= 1),
        ("unknown version", |b| b[4] ^= 1),
        ("flipped position bit", |b| b[9] ^= 0x10),
        ("flipped length bit", |b| b[24] ^= 1),
        ("flipped crc bit", |b| b[HEADER_BYTES - 1] ^= 0x80),
        ("flipped payload bit", |b| b[HEADER_BYTES + 3] ^= 4),
    ];
    for &(name, damage) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileCheckpoints::open(dir.path()).unwrap();
        store.save(pos(1, 10), b"older state").unwrap();
        store.save(pos(1, 20), b"newer state").unwrap();
        let newest = path_of(dir.path(), 2);
        let mut bytes = fs::read(&newest).unwrap();
        damage(&mut bytes);
        fs::write(&newest, &bytes).unwrap();

        let older = loaded(pos(1, 10), b"older state", 1);
        assert_eq!(store.load_latest().unwrap(), older, "{name}, same store");
        let mut store = FileCheckpoints::open(dir.path()).unwrap();
        assert_eq!(store.load_latest().unwrap(), older, "{name}, reopened");
        assert_eq!(store.retain_from(), pos(1, 10), "{name}");

        // The next save keeps the older valid one and the new one, and drops the corrupt one.
        store.save(pos(1, 30), b"newest state").unwrap();
        assert_eq!(
            checkpoint_files(dir.path()),
            vec![file_name(1), file_name(3)],
            "{name}"
        );
        assert_eq!(
            store.load_latest().unwrap(),
            loaded(pos(1, 30), b"newest state", 0),
            "{name}"
        );
        assert_eq!(store.retain_from(), pos(1, 10), "{name}");
    }
}

#[test]
fn all_checkpoints_corrupt_is_an_error_not_an_empty_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileCheckpoints::open(dir.path()).unwrap();
    store.save(pos(1, 10), b"a").unwrap();
    store.save(pos(1, 20), b"b").unwrap();
    for seq in [1, 2] {
        fs::write(path_of(dir.path(), seq), b"garbage").unwrap();
    }
    let store = FileCheckpoints::open(dir.path()).unwrap();
    assert!(matches!(
        store.load_latest(),
        Err(CheckpointError::AllCorrupt { files: 2 })
    ));
    assert_eq!(store.retain_from(), LogPosition::START);
}

#[test]
fn open_deletes_unfinished_saves_and_ignores_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileCheckpoints::open(dir.path()).unwrap();
    store.save(pos(1, 10), b"kept").unwrap();
    drop(store);
    let leftover = format!("{}.tmp", file_name(2));
    fs::write(dir.path().join(&leftover), b"half a checkpoint").unwrap();
    fs::write(dir.path().join("notes.txt"), b"not ours").unwrap();

    let store = FileCheckpoints::open(dir.path()).unwrap();
    assert_eq!(
        checkpoint_files(dir.path()),
        vec![file_name(1), "notes.txt".to_owned()]
    );
    assert_eq!(store.load_latest().unwrap(), loaded(pos(1, 10), b"kept", 0));
    assert_eq!(store.retain_from(), pos(1, 10));
}
