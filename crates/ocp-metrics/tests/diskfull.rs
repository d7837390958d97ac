//! A real full disk: the server's data dir on a tmpfs of a few MB, filled up while events flow.
//! Ingest must answer 503 with a clear message and accept nothing it cannot make durable, then
//! recover on its own once space returns, without a restart; afterwards (and after a SIGKILL)
//! the answers equal a recomputation of exactly the acknowledged events.
//!
//! Needs root (it mounts a tmpfs), as the project's machines and CI run; it fails, saying so,
//! where mounting is not allowed.

mod reliability;
mod support;

use reliability::{Proc, Rng, compare_all, generate, post};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `path` until a write fails, then gives back `leave` bytes.
fn fill(path: &Path, leave: u64) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0xA5u8; 16 * 1024];
    let mut written = 0u64;
    while f.write_all(&chunk).is_ok() {
        written += chunk.len() as u64;
    }
    let _ = f.sync_all();
    f.set_len(written.saturating_sub(leave)).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn a_full_disk_answers_503_accepts_nothing_undurable_and_recovers_when_space_returns() {
    let mount = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = Tmpfs::mount(mount.path(), "6m") else {
        panic!("cannot mount a tmpfs here: this test needs root (mount -t tmpfs)");
    };
    let logs = tempfile::tempdir().unwrap();
    let data = mount.path().join("data");
    let mut proc = Proc::new(
        &data,
        logs.path(),
        &[
            "--log-segment-bytes-max",
            "262144",
            "--checkpoint-interval-seconds",
            "2",
        ],
    );
    proc.start_ready();
    let token = proc.create_token();

    let lines: Vec<String> = generate(&mut Rng(7), 3000, "d")
        .into_iter()
        .filter(|l| l.valid)
        .map(|l| l.json)
        .collect();
    let requests: Vec<&[String]> = lines.chunks(200).collect();
    let send = |r: &[String]| {
        let body: String = r.iter().map(|l| format!("{l}\n")).collect();
        post(
            &format!("{}/ingest/v1/events", proc.base_url),
            Some(&token),
            "application/x-ndjson",
            body.as_bytes(),
        )
        .unwrap()
    };

    let filler = mount.path().join("filler");
    fill(&filler, 256 * 1024);
    let mut acked: Vec<&str> = Vec::new();
    let mut next = 0;
    let mut refusals = 0;
    while next < requests.len() {
        let (status, text) = send(requests[next]);
        match status {
            200 => {
                acked.extend(requests[next].iter().map(String::as_str));
                next += 1;
            }
            503 => {
                assert!(
                    text.contains("the disk holding the event log is full")
                        && text.contains("nothing of this request was accepted"),
                    "{text}"
                );
                refusals += 1;
                if refusals == 5 {
                    break;
                }
            }
            other => panic!("{other}: {text}"),
        }
    }
    assert_eq!(refusals, 5, "the disk never filled up");
    let full_at = acked.len();
    // Still serving queries, with exactly what was acknowledged.
    compare_all(&proc, &token, &acked).unwrap();
    let m = proc.metrics();
    assert!(m["ocp_metrics_commits_failed_total"] >= 5.0);

    // Space returns: the same server accepts the refused request and everything after it.
    std::fs::remove_file(&filler).unwrap();
    for r in &requests[next..] {
        let (status, text) = send(r);
        assert_eq!(status, 200, "{text}");
        acked.extend(r.iter().map(String::as_str));
    }
    compare_all(&proc, &token, &acked).unwrap();
    proc.kill9();
    proc.start_ready();
    compare_all(&proc, &token, &acked).unwrap();
    proc.stop();
    println!(
        "disk full after {full_at} events: 5 requests refused with 503, then {} more accepted once space returned; answers equal before and after a SIGKILL",
        acked.len() - full_at
    );
}
