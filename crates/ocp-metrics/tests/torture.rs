//! Crash torture: producers send a generated event stream (with retries, their own duplicates
//! and some invalid events) while the server is killed with SIGKILL at random moments (in the
//! middle of requests, commits, checkpoints, and recovery itself), restarted, and killed again.
//! At the end every query endpoint must equal a from-scratch recomputation of the acknowledged
//! events: nothing acknowledged lost, nothing counted twice.
//!
//! `TORTURE_CYCLES` (default 5, the CI short mode), `TORTURE_EVENTS_PER_CYCLE` (default 2000),
//! `TORTURE_SEED` (default 1) and `TORTURE_PRODUCERS` (default 2) tune it;
//! `scripts/torture.sh` runs the long mode (60 cycles, release build).
//!
//! A request answered non-200, or whose connection died, may or may not have been applied: the
//! producer retries it until it gets a 200 (dedupe makes that safe). An event is acknowledged
//! once a 200 lists it as accepted or duplicate; the acknowledged set is exactly what must be
//! counted.

mod reliability;
mod support;

use reliability::{
    Batching, Line, Proc, Rng, Target, deliver, discrepancy, generate, head, into_requests,
    query_all,
};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How long a request may go unacknowledged through kills and restarts.
const REQUEST_DEADLINE: Duration = Duration::from_secs(120);
/// The pause before a producer retries a request.
const RETRY_PAUSE: Duration = Duration::from_millis(5);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the producers saw.
#[derive(Default, Debug)]
struct Tally {
    requests: AtomicU64,
    attempts: AtomicU64,
    transport_errors: AtomicU64,
    non_200: AtomicU64,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    lines_sent: AtomicU64,
    /// Lines of requests answered 200 (what paces the kills).
    answered_lines: AtomicU64,
}

/// Posts each request until it is answered 200, then records what it acknowledged.
fn produce(
    requests: Vec<Vec<Line>>,
    url: Arc<RwLock<String>>,
    token: String,
    acked: Arc<Mutex<BTreeSet<String>>>,
    tally: Arc<Tally>,
) {
    for request in requests {
        tally.requests.fetch_add(1, Ordering::Relaxed);
        let next = || {
            tally.attempts.fetch_add(1, Ordering::Relaxed);
            tally
                .lines_sent
                .fetch_add(request.len() as u64, Ordering::Relaxed);
            let url = url.read().unwrap().clone();
            let token = token.clone();
            Target { url, token }
        };
        let failed = |outcome: Option<(u16, &str)>| match outcome {
            Some((status, text)) => {
                assert!(
                    status == 503 || status == 429,
                    "unexpected {status}: {text}"
                );
                tally.non_200.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                tally.transport_errors.fetch_add(1, Ordering::Relaxed);
            }
        };
        let answer = deliver(
            &request,
            &acked,
            (REQUEST_DEADLINE, RETRY_PAUSE),
            next,
            failed,
        );
        tally
            .accepted
            .fetch_add(answer["accepted"].as_u64().unwrap(), Ordering::Relaxed);
        tally
            .duplicates
            .fetch_add(answer["duplicates"].as_u64().unwrap(), Ordering::Relaxed);
        tally
            .rejected
            .fetch_add(answer["rejected"].as_u64().unwrap(), Ordering::Relaxed);
        tally
            .answered_lines
            .fetch_add(request.len() as u64, Ordering::SeqCst);
    }
}

/// Splits a producer's lines into requests of 1 to 200 events, shuffled in order, with the
/// producer's own duplicates: a line twice in one request, and resends of earlier requests.
fn into_shuffled_requests(rng: &mut Rng, mut lines: Vec<Line>) -> Vec<Vec<Line>> {
    for i in (1..lines.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        lines.swap(i, j);
    }
    let batching = Batching {
        events_max: 200,
        repeats_within: true,
    };
    into_requests(rng, &lines, batching)
}

/// Compares every endpoint's answers with the recomputation; returns (queries, lost, extra) and
/// the first mismatch, if any.
fn verify(proc: &Proc, token: &str, acked: &BTreeSet<String>) -> (usize, u64, u64, Option<String>) {
    let mut first_mismatch = None;
    let (mut lost, mut extra) = (0, 0);
    let queries = query_all(proc, token, acked.iter().map(String::as_str), |c| {
        let path = c.endpoint.path();
        assert_eq!(c.status, 200, "{path} {}: {}", c.body, c.got);
        if c.got != c.want {
            // One event adds exactly one to one of these (batch, counted where it started).
            let (l, x) = discrepancy(&c.want, &c.got, &["sessions", "invocations", "dialogs"]);
            lost += l;
            extra += x;
            first_mismatch.get_or_insert_with(|| {
                let (want, got) = (head(&c.want, 600), head(&c.got, 600));
                format!("{path} {}\n  want {want}\n  got  {got}", c.body)
            });
        }
        Ok(())
    })
    .unwrap();
    (queries, lost, extra, first_mismatch)
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged_and_counts_nothing_twice() {
    let cycles = env_or("TORTURE_CYCLES", 5);
    let per_cycle = env_or("TORTURE_EVENTS_PER_CYCLE", 2000);
    let seed = env_or("TORTURE_SEED", 1);
    let producers = env_or("TORTURE_PRODUCERS", 2).max(1);
    let mut rng = Rng(seed);

    // About 6 events per session.
    let sessions = (cycles * per_cycle / 6).max(1);
    let lines = generate(&mut rng, sessions, "t");
    let generated = lines.len();
    let valid_events: BTreeSet<String> = lines
        .iter()
        .filter(|l| l.valid)
        .map(|l| l.json.clone())
        .collect();
    let mut shares: Vec<Vec<Line>> = vec![Vec::new(); producers as usize];
    for line in lines {
        shares[rng.below(producers) as usize].push(line);
    }
    let plans: Vec<Vec<Vec<Line>>> = shares
        .into_iter()
        .map(|s| into_shuffled_requests(&mut rng, s))
        .collect();

    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    // Frequent checkpoints and small segments, so kills also land in checkpoints and in log
    // truncation.
    let mut proc = Proc::new(
        data.path(),
        logs.path(),
        &[
            "--checkpoint-interval-seconds",
            "1",
            "--checkpoint-log-bytes",
            "65536",
            "--log-segment-bytes-max",
            "65536",
        ],
    );
    let url = Arc::new(RwLock::new(proc.start_ready()));
    let token = proc.create_token();

    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let tally = Arc::new(Tally::default());
    let threads: Vec<_> = plans
        .into_iter()
        .map(|plan| {
            let (url, token, acked, tally) =
                (url.clone(), token.clone(), acked.clone(), tally.clone());
            std::thread::spawn(move || produce(plan, url, token, acked, tally))
        })
        .collect();

    let started = Instant::now();
    let (mut kills_in_recovery, mut torn_tail_bytes, mut corrupt_records) = (0u64, 0f64, 0f64);
    let mut cycle_log = Vec::new();
    for cycle in 0..cycles {
        // Most kills land while traffic flows (after a random share of a cycle's events was
        // answered, then a random few milliseconds more: inside requests, commits and
        // checkpoints); some right after start, often mid-recovery.
        let early = rng.chance(20);
        let kill_at = Instant::now();
        let what = if early {
            let ms = rng.below(30);
            std::thread::sleep(Duration::from_millis(ms));
            format!("{ms} ms after start (early)")
        } else {
            let base = tally.answered_lines.load(Ordering::SeqCst);
            let target = base + rng.below(2 * per_cycle) + 1;
            while tally.answered_lines.load(Ordering::SeqCst) < target
                && kill_at.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            let ms = rng.below(10);
            std::thread::sleep(Duration::from_millis(ms));
            format!(
                "{} answered events + {ms} ms",
                tally.answered_lines.load(Ordering::SeqCst) - base
            )
        };
        let before = acked.lock().unwrap().len();
        proc.kill9();
        if early {
            kills_in_recovery += 1;
        }
        *url.write().unwrap() = proc.start();
        proc.wait_ready();
        let m = proc.metrics();
        torn_tail_bytes += m["ocp_metrics_recovery_torn_tail_bytes"];
        corrupt_records += m["ocp_metrics_recovery_corrupt_records_skipped"];
        cycle_log.push(format!(
            "cycle {cycle}: killed {what}; {before} acknowledged so far; recovery replayed {} events in {} s, torn tail {} bytes",
            m["ocp_metrics_recovery_replayed_events"],
            m["ocp_metrics_recovery_seconds"],
            m["ocp_metrics_recovery_torn_tail_bytes"],
        ));
    }
    for t in threads {
        t.join().unwrap();
    }
    let chaos_seconds = started.elapsed().as_secs_f64();
    let acked = acked.lock().unwrap().clone();

    // Every valid event was eventually acknowledged (the producers retried until 200).
    assert_eq!(acked, valid_events);
    let t = |a: &AtomicU64| a.load(Ordering::Relaxed);
    // Each event is answered "accepted" at most once in all the answers; an event applied by a
    // request whose answer was lost comes back as a duplicate on retry.
    assert!(
        t(&tally.accepted) <= acked.len() as u64,
        "{} accepted answers for {} events: something was accepted twice",
        t(&tally.accepted),
        acked.len()
    );

    let mut results = Vec::new();
    let (queries, lost, extra, mismatch) = verify(&proc, &token, &acked);
    results.push(("after the last kill", lost, extra, mismatch));
    proc.kill9();
    proc.start_ready();
    let (_, lost, extra, mismatch) = verify(&proc, &token, &acked);
    results.push(("after one more kill, no traffic", lost, extra, mismatch));
    proc.stop();
    proc.start_ready();
    let (_, lost, extra, mismatch) = verify(&proc, &token, &acked);
    results.push(("after SIGTERM and restart", lost, extra, mismatch));
    let final_metrics = proc.metrics();
    proc.stop();

    println!("\n=== torture (seed {seed}, {producers} producers)");
    for line in &cycle_log {
        println!("  {line}");
    }
    println!(
        "cycles: {cycles} SIGKILLs ({kills_in_recovery} of them within 30 ms of start, during or right after recovery) in {chaos_seconds:.1} s, plus 1 idle SIGKILL and 1 SIGTERM"
    );
    println!(
        "events: {generated} generated, {} valid, {} invalid; {} lines sent in {} requests / {} attempts ({} transport errors, {} 503/429)",
        valid_events.len(),
        generated - valid_events.len(),
        t(&tally.lines_sent),
        t(&tally.requests),
        t(&tally.attempts),
        t(&tally.transport_errors),
        t(&tally.non_200),
    );
    println!(
        "acknowledged: {} events ({} answered accepted, {} applied before a lost answer; {} duplicate answers, {} rejected answers)",
        acked.len(),
        t(&tally.accepted),
        acked.len() as u64 - t(&tally.accepted),
        t(&tally.duplicates),
        t(&tally.rejected),
    );
    println!(
        "recovery: {torn_tail_bytes} torn-tail bytes cut over all restarts, {corrupt_records} corrupt records; final state: {} series, {} dedupe entries",
        final_metrics["ocp_metrics_series"], final_metrics["ocp_metrics_dedupe_entries"],
    );
    for (when, lost, extra, mismatch) in &results {
        println!(
            "{when}: {queries} queries over 11 endpoints: lost {lost}, duplicated {extra}{}",
            if mismatch.is_some() {
                ", ANSWERS DIFFER"
            } else {
                ", every answer equal"
            }
        );
    }
    for (when, _, _, mismatch) in &results {
        if let Some(m) = mismatch {
            panic!("{when}: an answer differs from the recomputation:\n{m}");
        }
    }
    assert_eq!(
        corrupt_records, 0.0,
        "SIGKILL must only ever leave torn tails"
    );
}
