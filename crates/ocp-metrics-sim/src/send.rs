//! The driver: posting NDJSON batches to an ingest endpoint, and streaming a simulator to it
//! in real time or at a fixed rate.
//!
//! It is deliberately simple and bounded: one connection, one batch in flight, a fixed number
//! of attempts per batch. Retrying a batch is safe because the server deduplicates by
//! `(group, id)`; a retry after an ambiguous failure shows up as duplicates, not double counts.

use std::borrow::Cow;
use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::Deserialize;

use crate::Simulator;

/// The server's answer to one ingest request (docs/api.md section 3.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct IngestReply {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    #[serde(default)]
    pub errors: Vec<IngestError>,
}

/// Why one event of a request was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IngestError {
    pub index: u64,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// A non-retryable status, or a retryable one that persisted through every attempt.
    #[error("{url} answered HTTP {status} after {attempts} attempt(s): {message}")]
    Status {
        url: String,
        status: u16,
        attempts: u32,
        message: String,
    },
    /// The server could not be reached (or the connection broke) through every attempt, or the
    /// URL is unusable.
    #[error("{url}: {message} (after {attempts} attempt(s))")]
    Transport {
        url: String,
        attempts: u32,
        message: String,
    },
    /// A 200 whose body is not an ingest reply.
    #[error("{url} answered 200 with a body that is not an ingest reply: {message}")]
    BadReply { url: String, message: String },
    #[error("gzip compression failed: {0}")]
    Compress(#[from] std::io::Error),
}

/// One agent for the process, so that connections are kept alive between batches.
fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
    })
}

/// Exponential backoff before attempt `attempt + 1` (attempts count from 1).
fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    exp.min(MAX_RETRY_WAIT)
}

/// `Retry-After` is either delay-seconds or an HTTP-date (RFC 9110 section 10.2.3).
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let wait = at.duration_since(Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// The server's `{"message": ...}`, or the raw body if it is not that shape.
fn error_message(resp: ureq::Response) -> String {
    let body = resp.into_string().unwrap_or_default();
    #[derive(Deserialize)]
    struct ErrorBody {
        message: String,
    }
    match serde_json::from_str::<ErrorBody>(&body) {
        Ok(e) => e.message,
        Err(_) => body.chars().take(ERROR_BODY_CHARS).collect(),
    }
}

fn retryable_transport(kind: ureq::ErrorKind) -> bool {
    matches!(
        kind,
        ureq::ErrorKind::Dns | ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Io
    )
}

/// POSTs `body` (NDJSON lines) to `{url}/ingest/v1/events`, gzip-compressed if asked.
///
/// Retries connection failures and 429, 502, 503, 504 answers, waiting as `Retry-After` says
/// (capped) or with exponential backoff, at most [`MAX_ATTEMPTS`] attempts in all. Other
/// statuses fail at once: they mean the request itself is wrong (bad token, too large...).
pub fn post_ndjson(
    url: &str,
    bearer: Option<&str>,
    body: &[u8],
    gzip: bool,
) -> Result<IngestReply, SendError> {
    let endpoint = format!("{}{INGEST_PATH}", url.trim_end_matches('/'));
    let payload: Cow<'_, [u8]> = if gzip {
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 4),
            flate2::Compression::fast(),
        );
        enc.write_all(body)?;
        Cow::Owned(enc.finish()?)
    } else {
        Cow::Borrowed(body)
    };
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut req = agent()
            .post(&endpoint)
            .set("Content-Type", "application/x-ndjson");
        if gzip {
            req = req.set("Content-Encoding", "gzip");
        }
        if let Some(auth) = &auth {
            req = req.set("Authorization", auth);
        }
        let wait = match req.send_bytes(&payload) {
            Ok(resp) => match resp.into_string() {
                Ok(text) => {
                    return serde_json::from_str(&text).map_err(|e| SendError::BadReply {
                        url: endpoint.clone(),
                        message: e.to_string(),
                    });
                }
                // The connection broke while the answer was read: the batch may or may not
                // have landed, and a retry is safe either way.
                Err(e) if attempt < MAX_ATTEMPTS => {
                    tracing::debug!(%e, attempt, "reading the ingest reply failed, retrying");
                    backoff(attempt)
                }
                Err(e) => {
                    return Err(SendError::Transport {
                        url: endpoint,
                        attempts: attempt,
                        message: e.to_string(),
                    });
                }
            },
            Err(ureq::Error::Status(status, resp)) => {
                let retry_after = resp.header("Retry-After").and_then(parse_retry_after);
                let message = error_message(resp);
                if !RETRYABLE_STATUSES.contains(&status) || attempt >= MAX_ATTEMPTS {
                    return Err(SendError::Status {
                        url: endpoint,
                        status,
                        attempts: attempt,
                        message,
                    });
                }
                tracing::debug!(status, %message, attempt, "ingest busy, retrying");
                retry_after
                    .unwrap_or_else(|| backoff(attempt))
                    .min(MAX_RETRY_WAIT)
            }
            Err(ureq::Error::Transport(t)) => {
                if !retryable_transport(t.kind()) || attempt >= MAX_ATTEMPTS {
                    return Err(SendError::Transport {
                        url: endpoint,
                        attempts: attempt,
                        message: t.to_string(),
                    });
                }
                tracing::debug!(error = %t, attempt, "ingest unreachable, retrying");
                backoff(attempt)
            }
        };
        std::thread::sleep(wait);
    }
}

/// How [`run_live_with`] streams.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveOptions {
    /// Stream the events emitted from this instant on. `None`: from now. An instant in the past
    /// is caught up as fast as the server takes it, then the stream goes on in real time, so
    /// `Some(now - 60 days)` is a whole demo: backfill, then live, with nothing lost or doubled.
    pub from: Option<Timestamp>,
    /// `None`: send each event once its `emit_at` has passed (real time). `Some(r)`: send `r`
    /// events per second, in emission order, never one whose `emit_at` is still in the future;
    /// the simulator must produce at least `r` events per second of simulated time (build it
    /// with [`crate::SimConfig::with_event_rate`]), otherwise the rate drops to what it makes.
    /// At a fixed rate the stream holds the sessions that *start* from `from` (default: 15
    /// minutes ago), so simulated time lags the clock a little, as a backlog.
    pub rate_events_per_sec: Option<f64>,
    /// Most events in one request.
    pub batch_events: usize,
    /// Send bodies gzip-compressed.
    pub gzip: bool,
}

/// What a live run sent, summed over the server's replies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveStats {
    pub batches: u64,
    pub events_sent: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// `emit_at` of the last event sent.
    pub last_emit_at: Option<Timestamp>,
}

/// Streams `sim` to `target` until `stop` is set: in real time (`rate_events_per_sec` = `None`)
/// or at a fixed rate, from `opts.from` on (see [`LiveOptions`]). Returns when `stop` is set
/// (after sending the batch being filled) or when a batch cannot be delivered.
pub fn run_live_with(
    target: &str,
    bearer: Option<&str>,
    sim: &Simulator,
    opts: &LiveOptions,
    stop: &AtomicBool,
) -> Result<LiveStats, SendError> {
    let batch_events = opts.batch_events.max(1);
    let rate = opts
        .rate_events_per_sec
        .filter(|r| r.is_finite() && *r > 0.0);
    // At a fixed rate a batch holds about RATE_BATCH_INTERVAL worth of events, so the flow is
    // smooth rather than one burst per `batch_events`.
    let target_batch = match rate {
        Some(r) => ((r * RATE_BATCH_INTERVAL.as_secs_f64()) as usize).clamp(1, batch_events),
        None => batch_events,
    };
    let mut events = match rate {
        // Real time: whatever is emitted from `from` on, including the rest of the sessions
        // already under way then.
        None => sim.emitted_between(opts.from.unwrap_or_else(Timestamp::now), Timestamp::MAX),
        // A fixed rate: whole sessions from `from` on. Starting in the past gives a backlog,
        // so the rate holds from the first second, while sessions build up in simulated time;
        // and it avoids generating the tail of sessions started before `from`, which at load
        // test volumes would take seconds.
        Some(_) => {
            let from = opts
                .from
                .unwrap_or_else(|| Timestamp::now() - RATE_MODE_LOOKBACK);
            sim.events_between(from, Timestamp::MAX)
        }
    }
    .peekable();
    let started = Instant::now();
    let mut stats = LiveStats::default();
    let mut body: Vec<u8> = Vec::with_capacity(target_batch * 400);
    let mut in_batch = 0usize;
    let mut batch_opened = started;
    let mut warned_dry = false;

    let flush = |body: &mut Vec<u8>, in_batch: &mut usize, stats: &mut LiveStats| {
        let reply = post_ndjson(target, bearer, body, opts.gzip)?;
        if let Some(first) = reply.errors.first() {
            tracing::warn!(
                rejected = reply.rejected,
                index = first.index,
                message = %first.message,
                "the server rejected simulated events"
            );
        }
        stats.batches += 1;
        stats.events_sent += *in_batch as u64;
        stats.accepted += reply.accepted;
        stats.duplicates += reply.duplicates;
        stats.rejected += reply.rejected;
        body.clear();
        *in_batch = 0;
        Ok::<(), SendError>(())
    };

    while !stop.load(Ordering::Relaxed) {
        let now = Timestamp::now();
        let allowed = match rate {
            None => target_batch - in_batch,
            Some(r) => {
                let due = (r * started.elapsed().as_secs_f64()) as u64;
                let owed = due.saturating_sub(stats.events_sent + in_batch as u64);
                owed.min((target_batch - in_batch) as u64) as usize
            }
        };
        let mut took = 0;
        while took < allowed {
            match events.peek() {
                Some(ev) if ev.emit_at <= now => {}
                _ => break,
            }
            let Some(ev) = events.next() else { break };
            if in_batch == 0 {
                batch_opened = Instant::now();
            }
            body.extend_from_slice(ev.json.as_bytes());
            body.push(b'\n');
            in_batch += 1;
            took += 1;
            stats.last_emit_at = Some(ev.emit_at);
        }
        let next_at = events.peek().map(|e| e.emit_at);
        if in_batch > 0 && (in_batch >= target_batch || batch_opened.elapsed() >= MAX_BATCH_DELAY) {
            flush(&mut body, &mut in_batch, &mut stats)?;
            continue;
        }
        if took > 0 {
            continue;
        }
        // Nothing could be taken: wait for the next event to come due, or for the next
        // token at a fixed rate, but never long, so that `stop` is seen promptly.
        let mut wait = POLL_INTERVAL;
        if let Some(t) = next_at.filter(|t| *t > now) {
            let until = Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO);
            wait = wait.min(until.max(Duration::from_millis(1)));
            if rate.is_some() && !warned_dry && allowed > 0 {
                warned_dry = true;
                tracing::warn!(
                    "the simulator makes fewer events than the requested rate; \
                     sending what it makes (use SimConfig::with_event_rate)"
                );
            }
        }
        if let Some(r) = rate
            && allowed == 0
        {
            wait = wait.min(Duration::from_secs_f64(
                (1.0 / r).min(POLL_INTERVAL.as_secs_f64()),
            ));
        }
        std::thread::sleep(wait.max(Duration::from_millis(1)));
    }
    if in_batch > 0 {
        flush(&mut body, &mut in_batch, &mut stats)?;
    }
    Ok(stats)
}

/// Path of the ingest API under the target URL.
pub const INGEST_PATH: &str = "/ingest/v1/events";
/// Attempts per batch, the first included.
pub const MAX_ATTEMPTS: u32 = 6;
/// Statuses that mean "try again later".
const RETRYABLE_STATUSES: [u16; 4] = [429, 502, 503, 504];
/// First backoff delay; doubles per attempt.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// Longest single wait between attempts, whatever `Retry-After` asks.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-request timeout: generous, since a batch may be tens of megabytes.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Characters of a non-JSON error body kept in the error.
const ERROR_BODY_CHARS: usize = 500;
/// A batch being filled is sent after this long even if not full.
const MAX_BATCH_DELAY: Duration = Duration::from_secs(1);
/// At a fixed rate, a batch holds about this much time's worth of events.
const RATE_BATCH_INTERVAL: Duration = Duration::from_millis(200);
/// How far back a fixed-rate run starts by default.
const RATE_MODE_LOOKBACK: jiff::SignedDuration = jiff::SignedDuration::from_mins(15);
/// Longest sleep of the streaming loop, so that `stop` is noticed quickly.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(400));
        assert_eq!(backoff(30), MAX_RETRY_WAIT);
    }
}
