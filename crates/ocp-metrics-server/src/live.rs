//! `GET /api/v1/live`: live updates of a real-time query as server-sent events
//! (docs/api.md section 5.6).
//!
//! A stream is one real-time query over a rolling window (the last `window_minutes`, in the
//! client's time zone, with its filters). The handler answers the whole window first, then wakes
//! after every applied commit (at most once per [`LIVE_PUSH_INTERVAL_MS`]) and when the clock
//! enters a new five-minute slot, re-runs the query and sends only the buckets whose value
//! changed since the last message. Re-running the query is exact by construction: a late event
//! that changes a bucket an hour back is sent like any other change, and a bucket never differs
//! from what `POST` of the same query would answer.
//!
//! Bounds: streams per token ([`LIVE_STREAMS_PER_TOKEN_MAX`], 429 past it) and in all
//! ([`LIVE_STREAMS_MAX`], 503), counted here, apart from the connection limit; every message
//! passes through a channel of [`LIVE_CHANNEL_MESSAGES_MAX`] messages, and a client that does
//! not take one within [`LIVE_SLOW_CLIENT_MS`] is dropped, so nothing is buffered without end.

use crate::app::App;
use crate::error::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::{Query as UrlQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use ocp_metrics_auth::Scope;
use ocp_metrics_core::echo::clip;
use ocp_metrics_core::query::{Answer, FilterDraft, QueryDraft};
use ocp_metrics_core::{Endpoint, Query};
use ocp_metrics_service::Backend;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Live streams one token (one API client, or one personal access token) may hold open. The
/// Reporting page holds one per distinct real-time query of its tab, three by default; eight
/// leaves room for a second page and a wallboard on the same token while one runaway script
/// cannot take every stream.
pub const LIVE_STREAMS_PER_TOKEN_MAX: usize = 8;
/// Live streams open at once, all tokens together. Each re-runs its query at most once a
/// second, so this bounds that work; it is well below `connections_max` so that streams never
/// crowd out ordinary requests.
pub const LIVE_STREAMS_MAX: usize = 256;
/// Shortest time between two update messages of one stream, in milliseconds: changes are
/// gathered and sent together, at most once a second.
pub const LIVE_PUSH_INTERVAL_MS: u64 = 1_000;
/// A comment line is sent after this long without any message, in milliseconds, so that the
/// connection is never idle (idle connections are closed by the server and by proxies) and a
/// client can tell a quiet stream from a dead one.
pub const LIVE_HEARTBEAT_INTERVAL_MS: u64 = 15_000;
/// How long a message may wait for room in a stream's channel, in milliseconds; past it the
/// client is too slow (or gone without closing) and the stream is closed.
pub const LIVE_SLOW_CLIENT_MS: u64 = 10_000;
/// Messages waiting between the stream's producer and the socket. Behind it the socket's own
/// buffers are bounded too, so a client that stops reading fills this and is dropped.
pub const LIVE_CHANNEL_MESSAGES_MAX: usize = 4;
/// The default and the longest rolling window, in minutes (the real-time retention, 48 hours).
pub const LIVE_WINDOW_MINUTES_DEFAULT: i64 = 60;
pub const LIVE_WINDOW_MINUTES_MAX: i64 = 48 * 60;

/// Width of the real-time storage slot, in seconds: a new bucket can start only on one of its
/// boundaries, so the stream wakes there to send the new (empty) bucket.
const SLOT_SECONDS: i64 = 300;
/// Query parameters a live request may carry.
const PARAMS: &str =
    "group, family, metrics, filters, drilldown, downsampling, timezone, window_minutes";

/// The open streams: counted per token and in all, and told to end at shutdown.
#[derive(Debug)]
pub struct LiveStreams {
    per_token: Mutex<HashMap<String, usize>>,
    shutdown: watch::Sender<bool>,
}

impl Default for LiveStreams {
    fn default() -> Self {
        LiveStreams {
            per_token: Mutex::new(HashMap::new()),
            shutdown: watch::Sender::new(false),
        }
    }
}

impl LiveStreams {
    /// Ends every stream (each sends nothing more and closes) and refuses new ones: a graceful
    /// shutdown waits for open responses, and a stream would otherwise never end.
    pub fn close_all(&self) {
        self.shutdown.send_replace(true);
    }

    /// Streams open now, all tokens together (for `/metrics`).
    pub fn open(&self) -> usize {
        self.per_token.lock().values().sum()
    }

    fn try_open(self: &Arc<Self>, subject: &str) -> Result<StreamPermit, ApiError> {
        if *self.shutdown.borrow() {
            return Err(ApiError::Unavailable {
                message: "the server is shutting down; reconnect in a few seconds".into(),
                retry_after_seconds: 2,
            });
        }
        let mut map = self.per_token.lock();
        if map.values().sum::<usize>() >= LIVE_STREAMS_MAX {
            return Err(ApiError::Unavailable {
                message: format!(
                    "the server already serves {LIVE_STREAMS_MAX} live streams (its limit); retry later, or poll the query endpoints instead"
                ),
                retry_after_seconds: 5,
            });
        }
        let count = map.entry(subject.to_string()).or_insert(0);
        if *count >= LIVE_STREAMS_PER_TOKEN_MAX {
            return Err(ApiError::RateLimited {
                message: format!(
                    "this token already has {LIVE_STREAMS_PER_TOKEN_MAX} live streams open (the limit per token); close one (a Reporting page holds up to three) or use another token"
                ),
                retry_after_seconds: 5,
            });
        }
        *count += 1;
        Ok(StreamPermit {
            owner: self.clone(),
            subject: subject.to_string(),
        })
    }
}

/// One open stream's place in the count; given back when the stream ends.
#[derive(Debug)]
struct StreamPermit {
    owner: Arc<LiveStreams>,
    subject: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut map = self.owner.per_token.lock();
        if let Some(n) = map.get_mut(&self.subject) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.subject);
            }
        }
    }
}

/// `GET /api/v1/live?group=G&family=F&...`: a `text/event-stream` of the query's buckets.
pub async fn live(
    State(app): State<App>,
    headers: HeaderMap,
    params: Result<UrlQuery<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let grants = app.authorize(&headers, Scope::MetricsRead)?;
    let UrlQuery(params) = params.map_err(|_| {
        ApiError::BadRequest(format!(
            "the query string is not valid URL encoding; parameters: {PARAMS}"
        ))
    })?;
    let request = LiveRequest::parse(params)?;
    // As for queries: a malformed group is a 400 from Query::parse, a well-formed one the token
    // was not granted is refused before anything else is looked at.
    if let Some(group) = request.draft.group.as_deref()
        && ocp_metrics_core::GroupName::parse(group).is_ok()
    {
        grants.require_group(group)?;
    }
    let engine = app.backend()?.clone();
    let query = request.query(engine.now())?;
    let permit = app.live.try_open(&grants.subject)?;
    // The first answer is computed before the 200, so that a query the engine refuses (an
    // answer too large) is an ordinary 400.
    let mut stream = Stream {
        engine,
        query,
        window: request.window,
        sent: Sent::default(),
    };
    let first = stream.answer().await?;
    let (tx, rx) = mpsc::channel(LIVE_CHANNEL_MESSAGES_MAX);
    let snapshot = stream.sent.diff(&first, Message::Snapshot);
    let shutdown = app.live.shutdown.subscribe();
    tokio::spawn(async move {
        let _permit = permit;
        stream.run(tx, snapshot, shutdown).await;
    });
    let mut response = Body::from_stream(LiveBody(rx)).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Tells nginx-style proxies not to hold the events back in a buffer.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// What the client asked for: the query minus its times, and the window.
#[derive(Debug)]
struct LiveRequest {
    endpoint: Endpoint,
    draft: QueryDraft,
    window: jiff::SignedDuration,
}

impl LiveRequest {
    /// Reads the parameters, which mirror the real-time query body (docs/api.md section 5.6).
    fn parse(params: Vec<(String, String)>) -> Result<LiveRequest, ApiError> {
        let bad = |m: String| ApiError::BadRequest(m);
        let mut endpoint = None;
        let mut draft = QueryDraft::default();
        let mut window = LIVE_WINDOW_MINUTES_DEFAULT;
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in params {
            if seen.contains(&key) {
                return Err(bad(format!(
                    "the parameter `{key}` is given twice; give it once"
                )));
            }
            match key.as_str() {
                "group" => draft.group = Some(value),
                "family" => {
                    endpoint = Some(match value.as_str() {
                        "dialogs" => Endpoint::V3RtDialogs,
                        "sessions" => Endpoint::V3RtSessions,
                        "miniapps" => Endpoint::V3RtMiniapps,
                        _ => {
                            return Err(bad(format!(
                                "`family` `{}` is not a real-time family; use dialogs, sessions or miniapps",
                                clip(&value)
                            )));
                        }
                    })
                }
                "metrics" => {
                    draft.metrics = Some(value.split(',').map(|m| m.trim().to_string()).collect())
                }
                "filters" => draft.filters = Some(filters(&value)?),
                "drilldown" => {
                    draft.drilldown = Some(match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(bad("`drilldown` must be true or false".into())),
                    })
                }
                "downsampling" => draft.downsampling = Some(value),
                "timezone" => draft.timezone = Some(value),
                "window_minutes" => {
                    window = value
                        .parse::<i64>()
                        .ok()
                        .filter(|w| (5..=LIVE_WINDOW_MINUTES_MAX).contains(w))
                        .ok_or_else(|| {
                            bad(format!(
                                "`window_minutes` must be a whole number from 5 to {LIVE_WINDOW_MINUTES_MAX} (48 hours, the real-time retention)"
                            ))
                        })?;
                }
                _ => {
                    return Err(bad(format!(
                        "unknown parameter `{}`; the parameters are: {PARAMS}",
                        clip(&key)
                    )));
                }
            }
            seen.push(key);
        }
        let endpoint = endpoint.ok_or_else(|| {
            bad("`family` is required: dialogs, sessions or miniapps (the real-time endpoint to follow)".into())
        })?;
        if draft.metrics.is_none() {
            draft.metrics = Some(
                endpoint
                    .metrics()
                    .iter()
                    .map(|m| m.name.to_string())
                    .collect(),
            );
        }
        Ok(LiveRequest {
            endpoint,
            draft,
            window: jiff::SignedDuration::from_mins(window),
        })
    }

    /// Checks everything but the times, as `POST` of the same body would, and returns the
    /// query; [`Stream::answer`] sets its times to the window before each run. The draft is
    /// parsed with times that are valid whatever the zone does: five minutes back and two hours
    /// ahead, written in the query's zone (UTC when the zone is unknown: parsing then refuses
    /// it with the usual message), so that neither a clock change read on the local clock nor
    /// the 48-hour limit can refuse a good request.
    fn query(&self, now: jiff::Timestamp) -> Result<Query, ApiError> {
        let zone = self
            .draft
            .timezone
            .as_deref()
            .and_then(|z| jiff::tz::TimeZone::get(z).ok())
            .unwrap_or(jiff::tz::TimeZone::UTC);
        let local = |minutes: i64| {
            now.checked_add(jiff::SignedDuration::from_mins(minutes))
                .unwrap_or(now)
                .to_zoned(zone.clone())
                .strftime("%Y/%m/%d %H:%M:%S")
                .to_string()
        };
        let mut draft = self.draft.clone();
        draft.start = Some(local(-5));
        draft.end = Some(local(120));
        let mut query = Query::parse(self.endpoint, draft, now)?;
        (query.start, query.end) = window_at(now, self.window);
        Ok(query)
    }
}

/// The instants a window ending `now` spans: `window` back, and one slot ahead so that the
/// running bucket is included (buckets that start after the clock are left out anyway).
fn window_at(
    now: jiff::Timestamp,
    window: jiff::SignedDuration,
) -> (jiff::Timestamp, jiff::Timestamp) {
    let start = now.checked_sub(window).unwrap_or(now);
    let end = now
        .checked_add(jiff::SignedDuration::from_secs(SLOT_SECONDS))
        .unwrap_or(now);
    (start, end)
}

/// `filters` is the body's `filters` object, as JSON.
fn filters(json: &str) -> Result<Vec<(String, FilterDraft)>, ApiError> {
    let body = format!("{{\"filters\":{json}}}");
    let draft = crate::wire::query_draft(body.as_bytes()).map_err(|_| {
        ApiError::BadRequest(
            "`filters` must be a JSON object mapping dimension names to arrays of values, as in a query body, e.g. {\"channel\":[\"chat\"]}".into(),
        )
    })?;
    Ok(draft.filters.unwrap_or_default())
}

/// A series' identity: its metric and tags.
type SeriesKey = (&'static str, Vec<(&'static str, String)>);

/// One stream's producer: the query, and what the client has been sent.
struct Stream {
    engine: Arc<dyn Backend>,
    query: Query,
    window: jiff::SignedDuration,
    sent: Sent,
}

/// What a client has been sent, to tell what changed.
#[derive(Debug, Default)]
struct Sent {
    /// Every series sent and the value of each bucket of the current window, as last sent.
    series: HashMap<SeriesKey, HashMap<String, u64>>,
    /// The first label of the window, as last sent: when it moves, the client drops buckets.
    from: Option<String>,
}

impl Sent {
    /// The message for what changed since the last one (every bucket, the first time), or
    /// `None` when nothing did; remembers the answer as sent.
    fn diff(&mut self, answer: &Answer, kind: Message) -> Option<Bytes> {
        let mut current: HashMap<SeriesKey, HashMap<String, u64>> = HashMap::new();
        let mut changed = Vec::new();
        for s in &answer.series {
            let key: SeriesKey = (s.metric, s.tags.clone());
            let before = self.series.get(&key);
            let dps: Vec<(&str, u64)> = answer
                .labels
                .iter()
                .zip(&s.values)
                .filter(|(label, v)| before.and_then(|b| b.get(*label)) != Some(v))
                .map(|(label, v)| (label.as_str(), *v))
                .collect();
            if !dps.is_empty() {
                changed.push((s, dps));
            }
            let values = answer.labels.iter().cloned().zip(s.values.iter().copied());
            current.insert(key, values.collect());
        }
        let removed: Vec<&SeriesKey> = self
            .series
            .keys()
            .filter(|k| !current.contains_key(*k))
            .collect();
        // The snapshot is sent even when it is empty: it tells the client the stream is live.
        let from = answer.labels.first().cloned();
        if changed.is_empty() && removed.is_empty() && from == self.from && kind == Message::Update
        {
            self.series = current;
            return None;
        }
        let mut out = String::with_capacity(256);
        out.push_str(match kind {
            Message::Snapshot => "event: snapshot",
            Message::Update => "event: update",
        });
        out.push_str("\ndata: {\"from\":");
        match answer.labels.first() {
            Some(l) => push_str(&mut out, l),
            None => out.push_str("null"),
        }
        out.push_str(",\"series\":[");
        for (i, (s, dps)) in changed.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_series(&mut out, s.metric, &s.tags);
            out.push_str(",\"dps\":{");
            for (j, (label, v)) in dps.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                push_str(&mut out, label);
                out.push(':');
                out.push_str(itoa::Buffer::new().format(*v));
            }
            out.push_str("}}");
        }
        out.push_str("],\"removed\":[");
        for (i, (metric, tags)) in removed.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_series(&mut out, metric, tags);
            out.push('}');
        }
        out.push_str("]}\n\n");
        self.series = current;
        self.from = from;
        Some(Bytes::from(out))
    }
}

/// The two kinds of data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    /// The first: the whole window.
    Snapshot,
    /// Every later one: what changed.
    Update,
}

impl Stream {
    /// Answers the query over the window ending now.
    async fn answer(&mut self) -> Result<Answer, ApiError> {
        let (start, end) = window_at(self.engine.now(), self.window);
        self.query.start = start;
        self.query.end = end;
        let engine = self.engine.clone();
        let query = self.query.clone();
        tokio::task::spawn_blocking(move || engine.query(&query))
            .await
            .map_err(|e| ApiError::Internal(format!("live query task: {e}")))?
            .map_err(ApiError::from)
    }

    /// Sends the snapshot, then updates and heartbeats until the client goes, is too slow, or
    /// the server shuts down.
    async fn run(
        mut self,
        tx: mpsc::Sender<Bytes>,
        snapshot: Option<Bytes>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut commits = self.engine.changes();
        commits.mark_unchanged();
        let heartbeat = Duration::from_millis(LIVE_HEARTBEAT_INTERVAL_MS);
        let mut written = Instant::now();
        let mut pushed = Instant::now();
        if let Some(m) = snapshot
            && !send(&tx, m).await
        {
            return;
        }
        loop {
            let boundary = Instant::now() + until_next_slot(self.engine.now());
            // Wait for a change: a commit, a new slot, a heartbeat due, or the end.
            loop {
                tokio::select! {
                    changed = commits.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        break;
                    }
                    () = tokio::time::sleep_until(boundary) => break,
                    () = tokio::time::sleep_until(written + heartbeat) => {
                        if !send(&tx, Bytes::from_static(b": heartbeat\n\n")).await {
                            return;
                        }
                        written = Instant::now();
                    }
                    () = tx.closed() => return,
                    () = stopped(&mut shutdown) => return,
                }
            }
            // At most one message a second: changes arriving meanwhile are gathered.
            let next = pushed + Duration::from_millis(LIVE_PUSH_INTERVAL_MS);
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = tx.closed() => return,
                () = stopped(&mut shutdown) => return,
            }
            commits.mark_unchanged();
            pushed = Instant::now();
            let answer = match self.answer().await {
                Ok(answer) => answer,
                Err(e) => {
                    // Sent or not, the stream ends: the request must change before it can work.
                    send(&tx, error_event(&e)).await;
                    return;
                }
            };
            let Some(message) = self.sent.diff(&answer, Message::Update) else {
                continue;
            };
            if !send(&tx, message).await {
                return;
            }
            written = Instant::now();
        }
    }
}

/// Resolves when the server shuts down (or its stream registry is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Queues a message for the socket; `false` when the client is gone or did not make room for
/// it within [`LIVE_SLOW_CLIENT_MS`] (the stream then ends).
async fn send(tx: &mpsc::Sender<Bytes>, message: Bytes) -> bool {
    let wait = Duration::from_millis(LIVE_SLOW_CLIENT_MS);
    match tx.send_timeout(message, wait).await {
        Ok(()) => true,
        Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
            tracing::info!(
                "a live stream's client did not read for {LIVE_SLOW_CLIENT_MS} ms; closed"
            );
            false
        }
        Err(mpsc::error::SendTimeoutError::Closed(_)) => false,
    }
}

/// The last message of a stream whose query stopped being answerable (say, a drilldown that
/// grew past the answer bounds); the client should fix its request before reconnecting.
fn error_event(e: &ApiError) -> Bytes {
    let mut out = String::from("event: error\ndata: {\"message\":");
    let message = match e {
        ApiError::Internal(detail) => {
            tracing::error!(detail = %detail, "a live query failed");
            "internal error: the live query could not be answered".into()
        }
        other => other.to_string(),
    };
    push_str(&mut out, &message);
    out.push_str("}\n\n");
    Bytes::from(out)
}

/// Time until the clock enters the next real-time slot, plus a little so that the new slot's
/// bucket is there when the query runs.
fn until_next_slot(now: jiff::Timestamp) -> Duration {
    let ms = now.as_millisecond().rem_euclid(SLOT_SECONDS * 1000);
    Duration::from_millis((SLOT_SECONDS * 1000 - ms) as u64 + 50)
}

/// `{"metric":...,"tags":{...}` (the caller closes the object).
fn push_series(out: &mut String, metric: &str, tags: &[(&'static str, String)]) {
    out.push_str("{\"metric\":");
    push_str(out, metric);
    out.push_str(",\"tags\":{");
    for (i, (k, v)) in tags.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, k);
        out.push(':');
        push_str(out, v);
    }
    out.push('}');
}

fn push_str(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

/// The response body: the messages of the channel, in order, until the producer ends.
struct LiveBody(mpsc::Receiver<Bytes>);

impl futures_core::Stream for LiveBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|m| m.map(Ok))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parameters_mirror_the_query_body() {
        let r = LiveRequest::parse(params(&[
            ("group", "acme"),
            ("family", "miniapps"),
            ("metrics", "miniapps_invocations,miniapps_no_inputs"),
            ("filters", r#"{"channel":["chat"],"test_flag":false}"#),
            ("drilldown", "true"),
            ("timezone", "Asia/Kolkata"),
            ("window_minutes", "120"),
        ]))
        .unwrap();
        assert_eq!(r.endpoint, Endpoint::V3RtMiniapps);
        assert_eq!(
            r.draft.metrics.as_deref(),
            Some(
                &[
                    "miniapps_invocations".to_string(),
                    "miniapps_no_inputs".to_string()
                ][..]
            )
        );
        assert_eq!(
            r.draft.filters,
            Some(vec![
                (
                    "channel".to_string(),
                    FilterDraft::Values(vec!["chat".into()])
                ),
                ("test_flag".to_string(), FilterDraft::Bool(false)),
            ])
        );
        assert_eq!(r.draft.drilldown, Some(true));
        assert_eq!(r.window, jiff::SignedDuration::from_mins(120));
    }

    #[test]
    fn metrics_default_to_every_metric_of_the_family() {
        let r = LiveRequest::parse(params(&[("group", "acme"), ("family", "sessions")])).unwrap();
        assert_eq!(r.draft.metrics, Some(vec!["session.initiated".to_string()]));
        assert_eq!(
            r.window,
            jiff::SignedDuration::from_mins(LIVE_WINDOW_MINUTES_DEFAULT)
        );
    }

    #[test]
    fn bad_parameters_are_refused_with_the_fix() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("group", "acme")], "`family` is required"),
            (&[("family", "batch")], "not a real-time family"),
            (
                &[("family", "sessions"), ("window_minutes", "4")],
                "from 5 to 2880",
            ),
            (
                &[("family", "sessions"), ("window_minutes", "2881")],
                "from 5 to 2880",
            ),
            (
                &[("family", "sessions"), ("filter", "{}")],
                "unknown parameter `filter`",
            ),
            (&[("family", "sessions"), ("filters", "[1]")], "JSON object"),
            (
                &[("family", "sessions"), ("drilldown", "yes")],
                "true or false",
            ),
            (
                &[("family", "sessions"), ("family", "dialogs")],
                "given twice",
            ),
        ];
        for (pairs, want) in cases {
            let e = LiveRequest::parse(params(pairs)).unwrap_err();
            assert!(e.to_string().contains(want), "{pairs:?}: {e}");
        }
    }

    fn answer(labels: &[&str], series: &[(&'static str, &str, &[u64])]) -> Answer {
        Answer {
            labels: labels.iter().map(|l| l.to_string()).collect(),
            series: series
                .iter()
                .map(
                    |(metric, channel, values)| ocp_metrics_core::query::AnswerSeries {
                        metric,
                        tags: vec![("group", "acme".into()), ("channel", channel.to_string())],
                        values: values.to_vec(),
                    },
                )
                .collect(),
        }
    }

    fn text(message: Option<Bytes>) -> String {
        String::from_utf8(message.expect("a message").to_vec()).unwrap()
    }

    #[test]
    fn only_what_changed_is_sent() {
        let mut sent = Sent::default();
        let m = "miniapps_invocations";
        let first = answer(&["10:00", "10:05"], &[(m, "chat", &[1, 0])]);
        assert_eq!(
            text(sent.diff(&first, Message::Snapshot)),
            "event: snapshot\ndata: {\"from\":\"10:00\",\"series\":[{\"metric\":\"miniapps_invocations\",\"tags\":{\"group\":\"acme\",\"channel\":\"chat\"},\"dps\":{\"10:00\":1,\"10:05\":0}}],\"removed\":[]}\n\n"
        );
        // The same answer again: nothing to send.
        assert_eq!(sent.diff(&first, Message::Update), None);
        // A late event in the older bucket, and a new combination (drilldown).
        let second = answer(
            &["10:00", "10:05"],
            &[(m, "chat", &[2, 0]), (m, "omIVR", &[0, 1])],
        );
        assert_eq!(
            text(sent.diff(&second, Message::Update)),
            "event: update\ndata: {\"from\":\"10:00\",\"series\":[{\"metric\":\"miniapps_invocations\",\"tags\":{\"group\":\"acme\",\"channel\":\"chat\"},\"dps\":{\"10:00\":2}},{\"metric\":\"miniapps_invocations\",\"tags\":{\"group\":\"acme\",\"channel\":\"omIVR\"},\"dps\":{\"10:00\":0,\"10:05\":1}}],\"removed\":[]}\n\n"
        );
        // The window moves on: a new empty bucket, the chat series leaves the answer.
        let third = answer(&["10:05", "10:10"], &[(m, "omIVR", &[1, 0])]);
        assert_eq!(
            text(sent.diff(&third, Message::Update)),
            "event: update\ndata: {\"from\":\"10:05\",\"series\":[{\"metric\":\"miniapps_invocations\",\"tags\":{\"group\":\"acme\",\"channel\":\"omIVR\"},\"dps\":{\"10:10\":0}}],\"removed\":[{\"metric\":\"miniapps_invocations\",\"tags\":{\"group\":\"acme\",\"channel\":\"chat\"}}]}\n\n"
        );
        // Only the first bucket leaves: the new `from` is still news.
        let fourth = answer(&["10:10"], &[(m, "omIVR", &[0])]);
        assert_eq!(
            text(sent.diff(&fourth, Message::Update)),
            "event: update\ndata: {\"from\":\"10:10\",\"series\":[],\"removed\":[]}\n\n"
        );
    }

    #[test]
    fn an_empty_snapshot_is_still_sent() {
        let mut sent = Sent::default();
        let empty = answer(&[], &[]);
        assert_eq!(
            text(sent.diff(&empty, Message::Snapshot)),
            "event: snapshot\ndata: {\"from\":null,\"series\":[],\"removed\":[]}\n\n"
        );
        assert_eq!(sent.diff(&empty, Message::Update), None);
    }

    /// A client that takes nothing is given up on (after `LIVE_SLOW_CLIENT_MS`), not queued
    /// for without end; one that reads gets its message.
    #[tokio::test]
    async fn a_client_that_does_not_read_is_dropped() {
        let (tx, mut rx) = mpsc::channel(1);
        assert!(send(&tx, Bytes::from_static(b"first")).await);
        assert!(!send(&tx, Bytes::from_static(b"second")).await);
        assert_eq!(rx.recv().await.as_deref(), Some(&b"first"[..]));
        assert!(send(&tx, Bytes::from_static(b"third")).await);
        drop(rx);
        assert!(!send(&tx, Bytes::from_static(b"fourth")).await);
    }

    #[test]
    fn the_next_slot_is_at_the_next_five_minute_boundary() {
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        assert_eq!(
            until_next_slot(at("2026-11-25T10:04:59Z")),
            Duration::from_millis(1_050)
        );
        assert_eq!(
            until_next_slot(at("2026-11-25T10:05:00Z")),
            Duration::from_millis(300_050)
        );
    }
}
