//! Availability against clients that hold connections, send huge bodies or gzip bombs: each
//! test replays an attack that took the service down for other tenants and asserts the bound
//! (a status, a time, or the server's memory from `/proc/PID/status`).

mod support;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};
use support::{NDJSON, Options, RT_MINIAPPS_V3, TestServer};

/// Connections the first attack opens: more than the default limit of 1,024.
const ATTACK_CONNECTIONS: usize = 1_100;
/// The size of the huge bodies: 200 MB.
const HUGE_BODY_BYTES: usize = 200_000_000;
/// How much a refused huge body may grow the server's peak memory: a few MB (hyper's read
/// buffer and a small route's body bound), against the hundreds of MB of buffering it all.
const HUGE_BODY_HWM_DELTA_KIB_MAX: u64 = 8 << 10;
/// The in-flight ingest budget the gzip-bomb tests run with.
const INFLIGHT_BYTES: u64 = 16 << 20;

/// A valid query of the tenant `acme`.
fn acme_query() -> Value {
    json!({
        "metrics": ["miniapps_invocations"], "filters": {}, "drilldown": false,
        "group": "acme", "downsampling": "five_min",
        "start": "2024/03/27 10:00:00", "end": "2024/03/27 10:10:00",
    })
}

/// Raises this process's soft open-file limit (inherited by the server it spawns) so that
/// both ends of the attack's connections fit, with `prlimit` since the workspace forbids the
/// `unsafe` a direct `setrlimit` needs.
fn ensure_open_files(needed: u64) {
    let soft = || -> u64 {
        let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("a Max open files line");
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields[3].parse().unwrap_or(u64::MAX)
    };
    if soft() >= needed {
        return;
    }
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={needed}:")])
        .status();
    assert!(
        soft() >= needed,
        "this test needs {needed} open files; raise `ulimit -n` (the hard limit is too low for prlimit)"
    );
}

#[test]
fn a_tenant_is_served_while_1100_idle_and_half_sent_connections_are_open() {
    ensure_open_files(3 * ATTACK_CONNECTIONS as u64);
    let mut server = TestServer::start();
    let token = server.acme_token();
    // Half the connections say nothing, half stop in the middle of their headers; none sends a
    // credential.
    let held: Vec<TcpStream> = (0..ATTACK_CONNECTIONS)
        .map(|i| {
            let mut c = TcpStream::connect(server.addr()).expect("connect");
            if i % 2 == 1 {
                c.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
                    .expect("half a header");
            }
            c
        })
        .collect();
    let started = Instant::now();
    let (status, _, body) = server.query(&token, RT_MINIAPPS_V3, acme_query());
    let elapsed = started.elapsed();
    eprintln!(
        "tenant query with {ATTACK_CONNECTIONS} attack connections open: {status} in {elapsed:?}"
    );
    assert_eq!(status, 200, "{body}");
    // Generous for a loaded 2-core machine; the old server refused the tenant outright.
    assert!(
        elapsed < Duration::from_secs(10),
        "the tenant waited {elapsed:?}"
    );
    // Shutting down does not wait for the attack's sockets: they have nothing in progress.
    let stopping = Instant::now();
    server.stop_gracefully();
    let stopped = stopping.elapsed();
    eprintln!("graceful stop with the attack's connections open: {stopped:?}");
    assert!(
        stopped < Duration::from_secs(5),
        "stopping took {stopped:?}"
    );
    drop(held);
}

/// Reads from `c` until the server closes it (EOF or reset); what arrived and when the close
/// came, or `None` if it never did before the read timeout.
fn read_until_closed(c: &mut TcpStream) -> (Vec<u8>, Option<Duration>) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return (got, Some(started.elapsed())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (got, Some(started.elapsed()));
            }
            Err(_) => return (got, None),
        }
    }
}

/// Writes `head`, then `byte` every 100 ms until the server closes the connection (or a
/// minute passed), on a thread of its own.
fn dribble(c: &TcpStream, head: &[u8], byte: u8) -> std::thread::JoinHandle<()> {
    let mut w = c.try_clone().expect("clone");
    let head = head.to_vec();
    std::thread::spawn(move || {
        if w.write_all(&head).is_err() {
            return;
        }
        for _ in 0..600 {
            std::thread::sleep(Duration::from_millis(100));
            if w.write_all(&[byte]).is_err() {
                return;
            }
        }
    })
}

#[test]
fn a_slowloris_and_an_idle_keep_alive_connection_are_closed_at_the_header_timeout() {
    let timeout = Duration::from_millis(2_000);
    let server = TestServer::start_with(Options::args(&["--header-read-timeout-ms", "2000"]));

    let mut slow = TcpStream::connect(server.addr()).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let writer = dribble(&slow, b"GET /healthz HTTP/1.1\r\nX-Slow: ", b'a');
    let (_, closed) = read_until_closed(&mut slow);
    let closed = closed.expect("the server never closed the slowloris connection");
    eprintln!("slowloris closed after {closed:?}");
    assert!(
        closed >= timeout.mul_f64(0.9) && closed < timeout * 4,
        "a slowloris sending a header byte every 100 ms was closed after {closed:?}, not at the {timeout:?} header timeout"
    );
    let _ = slow.shutdown(Shutdown::Both);
    writer.join().expect("writer");

    let mut idle = TcpStream::connect(server.addr()).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("request");
    let (answer, closed) = read_until_closed(&mut idle);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let closed = closed.expect("the server never closed the idle keep-alive connection");
    eprintln!("idle keep-alive connection closed after {closed:?}");
    assert!(
        closed >= timeout.mul_f64(0.9) && closed < timeout * 4,
        "an idle keep-alive connection was closed after {closed:?}, not at the {timeout:?} idle timeout"
    );
}

#[test]
fn a_body_sent_a_byte_at_a_time_is_cut_off_at_the_body_read_deadline() {
    let deadline = Duration::from_millis(2_000);
    let server = TestServer::start_with(Options::args(&["--body-read-timeout-ms", "2000"]));
    let token = server.acme_token();
    let mut c = TcpStream::connect(server.addr()).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let head = format!(
        "POST /ingest/v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nContent-Type: {NDJSON}\r\nContent-Length: 100000\r\n\r\n"
    );
    let writer = dribble(&c, head.as_bytes(), b' ');
    let (answer, closed) = read_until_closed(&mut c);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("did not arrive within 2 s"), "{text}");
    let closed = closed.expect("the server never closed the connection");
    eprintln!("trickled body cut off after {closed:?}");
    assert!(
        closed >= deadline.mul_f64(0.9) && closed < deadline * 4,
        "the trickled body was cut off after {closed:?}, not at the {deadline:?} deadline"
    );
    let _ = c.shutdown(Shutdown::Both);
    writer.join().expect("writer");
}

/// Sends `head` and then up to 200 MB of body (with Content-Length 200 MB, or chunked),
/// reading the answer meanwhile; returns the answer and how long it took.
fn send_huge(server: &TestServer, head: &str, chunked: bool) -> (String, Duration) {
    let mut c = TcpStream::connect(server.addr()).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let framing = if chunked {
        "Transfer-Encoding: chunked\r\n".to_string()
    } else {
        format!("Content-Length: {HUGE_BODY_BYTES}\r\n")
    };
    let mut w = c.try_clone().expect("clone");
    let head = format!("{head}{framing}\r\n");
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        let block = vec![b'a'; 64 << 10];
        let mut chunk = format!("{:x}\r\n", block.len()).into_bytes();
        chunk.extend_from_slice(&block);
        chunk.extend_from_slice(b"\r\n");
        let piece = if chunked { &chunk } else { &block };
        w.write_all(head.as_bytes())?;
        for _ in 0..HUGE_BODY_BYTES / block.len() {
            w.write_all(piece)?;
        }
        if chunked {
            w.write_all(b"0\r\n\r\n")?;
        }
        Ok::<(), std::io::Error>(())
    });
    let (answer, _) = read_until_closed(&mut c);
    let elapsed = started.elapsed();
    let _ = c.shutdown(Shutdown::Both);
    let _ = writer.join().expect("writer");
    (String::from_utf8_lossy(&answer).into_owned(), elapsed)
}

#[test]
fn a_200_mb_body_to_the_token_endpoint_or_the_admin_api_is_refused_without_being_buffered() {
    let server = TestServer::start();
    let token_head = "POST /oauth2/token HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n";
    let admin_head = "POST /admin/v1/clients HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nAuthorization: Bearer wrong-admin-token\r\n";
    let hwm_before = server.proc_status_kib("VmHWM");
    let rss_before = server.proc_status_kib("VmRSS");
    for (head, chunked, status, message) in [
        (token_head, false, "413", "over 16384 bytes"),
        (token_head, true, "413", "over 16384 bytes"),
        (admin_head, false, "413", "over 65536 bytes"),
        (admin_head, true, "401", "the admin API needs"),
    ] {
        let (answer, elapsed) = send_huge(&server, head, chunked);
        let case = format!("{} chunked={chunked}", head.lines().next().unwrap_or(""));
        eprintln!("{case}: {:?} after {elapsed:?}", answer.lines().next());
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{case}: {answer}"
        );
        assert!(answer.contains(message), "{case}: {answer}");
        assert!(
            elapsed < Duration::from_secs(10),
            "{case}: answered after {elapsed:?}"
        );
    }
    let hwm_delta = server.proc_status_kib("VmHWM") - hwm_before;
    let rss_after = server.proc_status_kib("VmRSS");
    eprintln!("huge bodies: VmHWM +{hwm_delta} KiB, VmRSS {rss_before} -> {rss_after} KiB");
    assert!(
        hwm_delta < HUGE_BODY_HWM_DELTA_KIB_MAX,
        "peak memory grew by {hwm_delta} KiB for bodies that were refused"
    );
    assert!(
        rss_after < rss_before + HUGE_BODY_HWM_DELTA_KIB_MAX,
        "resident memory went from {rss_before} to {rss_after} KiB"
    );
}

/// `blocks` times `block`, gzip-compressed as hard as gzip goes.
fn gzip_bomb(block: &[u8], blocks: usize) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    for _ in 0..blocks {
        gz.write_all(block).expect("compress");
    }
    gz.finish().expect("compress")
}

#[test]
fn four_concurrent_gzip_bombs_of_short_lines_are_refused_within_the_inflight_budget() {
    // 256 MiB of `x\n`: 134 million one-character lines, about 254 KB compressed.
    let bomb = gzip_bomb(&b"x\n".repeat(1 << 19), 256);
    assert!(bomb.len() < 300 << 10, "{} bytes", bomb.len());
    let server = TestServer::start_with(Options::args(&[
        "--inflight-ingest-bytes-max",
        &INFLIGHT_BYTES.to_string(),
    ]));
    let token = server.acme_token();
    let hwm_before = server.proc_status_kib("VmHWM");
    let started = Instant::now();
    let answers: Vec<(u16, String)> = std::thread::scope(|s| {
        let sent: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let r = server.ingest_with(Some(&token), NDJSON, Some("gzip"), &bomb);
                    (r.status, r.text)
                })
            })
            .collect();
        sent.into_iter()
            .map(|h| h.join().expect("sender"))
            .collect()
    });
    let elapsed = started.elapsed();
    eprintln!(
        "four gzip bombs ({} bytes each): {:?} in {elapsed:?}, VmHWM +{} KiB",
        bomb.len(),
        answers.iter().map(|a| a.0).collect::<Vec<_>>(),
        server.proc_status_kib("VmHWM") - hwm_before
    );
    for (status, text) in &answers {
        assert_eq!(*status, 413, "{text}");
        assert!(
            text.contains("more than 200000 events; send at most 200000 per request"),
            "{text}"
        );
    }
    let hwm_delta = server.proc_status_kib("VmHWM") - hwm_before;
    assert!(
        hwm_delta < 3 * INFLIGHT_BYTES / 1024,
        "peak memory grew by {hwm_delta} KiB (in-flight budget {} KiB)",
        INFLIGHT_BYTES / 1024
    );
    assert!(
        elapsed < Duration::from_secs(20),
        "four bombs took {elapsed:?}"
    );
}

#[test]
fn a_gzip_bomb_without_line_breaks_stops_at_the_inflight_budget() {
    // 256 MiB of `x` and no line break: no event count can stop it, the byte budget must.
    let bomb = gzip_bomb(&[b'x'; 1 << 20], 256);
    let server = TestServer::start_with(Options::args(&[
        "--inflight-ingest-bytes-max",
        &INFLIGHT_BYTES.to_string(),
    ]));
    let token = server.acme_token();
    let hwm_before = server.proc_status_kib("VmHWM");
    let r = server.ingest_with(Some(&token), NDJSON, Some("gzip"), &bomb);
    eprintln!(
        "one-line gzip bomb: {} VmHWM +{} KiB",
        r.status,
        server.proc_status_kib("VmHWM") - hwm_before
    );
    assert_eq!(r.status, 413, "{}", r.text);
    assert!(
        r.text
            .contains("more than the server's ingest memory budget of 16777216 bytes"),
        "{}",
        r.text
    );
    let hwm_delta = server.proc_status_kib("VmHWM") - hwm_before;
    assert!(
        hwm_delta < 3 * INFLIGHT_BYTES / 1024,
        "peak memory grew by {hwm_delta} KiB (in-flight budget {} KiB)",
        INFLIGHT_BYTES / 1024
    );
}
