//! `POST /ingest/v1/events`: NDJSON or a JSON array, optionally gzip, validated per event,
//! deduplicated and made durable by the engine before the answer.

use crate::app::{App, InflightPermit, InflightRefusal, Limits, busy_ingesting, read_body};
use crate::error::ApiError;
use crate::wire::WireEvent;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use ocp_metrics_auth::{Grants, Scope};
use ocp_metrics_core::Event;
use serde::Serialize;
use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::cell::Cell;
use std::io::Read;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Ndjson,
    JsonArray,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct IngestAnswer {
    /// Events now stored (durably) and counted.
    accepted: usize,
    /// Events whose `(group, id)` was already accepted within the dedupe window; counted nowhere.
    duplicates: usize,
    /// Events refused, each listed in `errors`.
    rejected: usize,
    /// One entry per rejected event, sorted by `index`.
    errors: Vec<EventErrorAnswer>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EventErrorAnswer {
    /// The event's 0-based position in the request (array position, or non-blank line).
    index: usize,
    /// Names the field in backquotes and says how to fix it.
    message: String,
}

/// The validated part of a request: events to submit, the request index of each, and the
/// per-event errors.
struct Parsed {
    events: Vec<Event>,
    indices: Vec<usize>,
    errors: Vec<EventErrorAnswer>,
}

/// Bytes decompressed at a time: each step's output is counted against the in-flight budget
/// and scanned for events before the next one is produced.
const DECODE_CHUNK_BYTES: usize = 64 << 10;

pub async fn ingest(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let grants = app.authorize(&headers, Scope::EventsWrite)?;
    let format = format_of(&headers)?;
    let gzip = gzip_of(&headers)?;
    let limits = app.limits.clone();
    // The body's bytes are taken from the in-flight budget before it is buffered: its
    // declared length, or the largest body allowed when it is sent chunked.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let reserved = declared.map_or(limits.body_bytes_max, |n| n.min(limits.body_bytes_max));
    let mut permit = app.ingest_bytes.try_acquire(reserved)?;
    let raw = read_body(body, limits.body_bytes_max, || {
        format!(
            "the request body is over {} bytes; send fewer events per request",
            limits.body_bytes_max
        )
    })
    .await?;
    permit.shrink_to(raw.len());
    let engine = app.backend()?;
    let now = engine.now();
    // The permit lives until the engine has committed the events: their memory is in flight
    // until then.
    let (parsed, _permit) = tokio::task::spawn_blocking(move || {
        parse(raw, gzip, format, &limits, &grants, now, &mut permit).map(|p| (p, permit))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("ingest parser task: {e}")))??;
    let Parsed {
        events,
        indices,
        mut errors,
    } = parsed;
    let outcome = engine.ingest(events).await?;
    if !outcome.rejected.is_empty() {
        errors.extend(
            outcome
                .rejected
                .into_iter()
                .map(|(i, message)| EventErrorAnswer {
                    index: indices[i],
                    message,
                }),
        );
        errors.sort_by_key(|e| e.index);
    }
    let answer = IngestAnswer {
        accepted: outcome.accepted,
        duplicates: outcome.duplicates.len(),
        rejected: errors.len(),
        errors,
    };
    Ok(axum::Json(answer).into_response())
}

fn format_of(headers: &HeaderMap) -> Result<Option<Format>, ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(None);
    };
    let ct = ct
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines" => Ok(Some(Format::Ndjson)),
        "application/json" => Ok(Some(Format::JsonArray)),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type `{other}` is not supported; send application/x-ndjson (one event per line) or application/json (an array of events)"
        ))),
    }
}

fn gzip_of(headers: &HeaderMap) -> Result<bool, ApiError> {
    match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase())
    {
        None => Ok(false),
        Some(e) if e == "identity" || e.is_empty() => Ok(false),
        Some(e) if e == "gzip" || e == "x-gzip" => Ok(true),
        Some(e) => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Encoding `{e}` is not supported; send the body uncompressed or gzip-compressed"
        ))),
    }
}

fn parse(
    raw: Bytes,
    gzip: bool,
    format: Option<Format>,
    limits: &Limits,
    grants: &Grants,
    now: Timestamp,
    permit: &mut InflightPermit,
) -> Result<Parsed, ApiError> {
    // Parse the body where it lies; only a compressed one needs a buffer of its own.
    let decoded;
    let body: &[u8] = if gzip {
        decoded = gunzip(&raw, format, limits, permit)?;
        &decoded
    } else {
        &raw
    };
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body is not UTF-8 text ({e}); send JSON encoded as UTF-8"
        ))
    })?;
    let format = format.unwrap_or(if text.trim_start().starts_with('[') {
        Format::JsonArray
    } else {
        Format::Ndjson
    });
    let max = limits.events_per_request_max;
    let items = match format {
        Format::Ndjson => ndjson_items(text, max)?,
        Format::JsonArray => array_items(text, max)?,
    };
    validate(&items, grants, now)
}

/// The 413 of a request with more than `max` events.
fn too_many_events(max: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the request holds more than {max} events; send at most {max} per request"
    ))
}

/// The non-blank lines of an NDJSON body, refused as soon as there are more than `max`.
fn ndjson_items(text: &str, max: usize) -> Result<Vec<&str>, ApiError> {
    let mut items = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if items.len() == max {
            return Err(too_many_events(max));
        }
        items.push(line);
    }
    Ok(items)
}

/// The elements of a JSON array body, refused as soon as there are more than `max`.
fn array_items(text: &str, max: usize) -> Result<Vec<&str>, ApiError> {
    let over = Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let items = CappedArray { max, over: &over }
        .deserialize(&mut deserializer)
        .and_then(|items| deserializer.end().map(|()| items));
    match items {
        Ok(items) => Ok(items.into_iter().map(RawValue::get).collect()),
        Err(_) if over.get() => Err(too_many_events(max)),
        Err(e) => Err(ApiError::BadRequest(format!(
            "the body is not a JSON array of event objects ({e})"
        ))),
    }
}

/// Deserializes a JSON array of raw elements, failing (and setting `over`) at element
/// `max + 1` instead of collecting the rest.
struct CappedArray<'c> {
    max: usize,
    over: &'c Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for CappedArray<'_> {
    type Value = Vec<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for CappedArray<'_> {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            if items.len() == self.max {
                self.over.set(true);
                return Err(serde::de::Error::custom("too many events"));
            }
            items.push(item);
        }
        Ok(items)
    }
}

/// Validates every event; refuses the whole request if any event names a group the caller
/// may not write, so that a request is never half-accepted across tenants.
fn validate(items: &[&str], grants: &Grants, now: Timestamp) -> Result<Parsed, ApiError> {
    let mut parsed = Parsed {
        events: Vec::with_capacity(items.len()),
        indices: Vec::with_capacity(items.len()),
        errors: Vec::new(),
    };
    for (index, json) in items.iter().enumerate() {
        let wire = match WireEvent::parse(json) {
            Ok(w) => w,
            Err(message) => {
                parsed.errors.push(EventErrorAnswer { index, message });
                continue;
            }
        };
        if let Some(group) = wire.group.as_deref()
            && !grants.allows_group(group)
        {
            return Err(ApiError::Forbidden(format!(
                "event {index} is for a group this token may not write; nothing of this request was accepted: send only events of your granted groups"
            )));
        }
        match Event::parse(&wire.draft(), now) {
            Ok(e) => {
                parsed.events.push(e);
                parsed.indices.push(index);
            }
            Err(e) => parsed.errors.push(EventErrorAnswer {
                index,
                message: e.to_string(),
            }),
        }
    }
    Ok(parsed)
}

/// Decompresses step by step: each step's output is counted against the in-flight budget
/// and, for NDJSON, its events are counted; decompression stops at the first limit passed
/// (decoded bytes, budget or events), so a small gzip bomb costs at most a step's worth of
/// memory past the limit, never its full inflated size.
fn gunzip(
    raw: &[u8],
    format: Option<Format>,
    limits: &Limits,
    permit: &mut InflightPermit,
) -> Result<Vec<u8>, ApiError> {
    let max = limits.decoded_bytes_max;
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(max));
    let mut chunk = vec![0; DECODE_CHUNK_BYTES];
    let mut lines = LineCounter::new(format);
    let mut decoder = flate2::read::MultiGzDecoder::new(raw);
    loop {
        let room = (max + 1 - out.len()).min(DECODE_CHUNK_BYTES);
        let n = decoder.read(&mut chunk[..room]).map_err(|e| {
            ApiError::BadRequest(format!(
                "the body is not valid gzip ({e}); compress it with gzip or drop Content-Encoding"
            ))
        })?;
        if n == 0 {
            return Ok(out);
        }
        if out.len() + n > max {
            return Err(ApiError::PayloadTooLarge(format!(
                "the body decompresses to over {max} bytes; send fewer events per request"
            )));
        }
        permit.grow(n).map_err(|refusal| match refusal {
            InflightRefusal::Busy => busy_ingesting(),
            InflightRefusal::OverBudget => ApiError::PayloadTooLarge(format!(
                "the body decompresses to more than the server's ingest memory budget of {} bytes; send fewer events per request",
                limits.inflight_ingest_bytes_max
            )),
        })?;
        let start = out.len();
        out.extend_from_slice(&chunk[..n]);
        if lines.feed(&out, start) > limits.events_per_request_max {
            return Err(too_many_events(limits.events_per_request_max));
        }
    }
}

/// Counts the events of NDJSON output as it is decompressed: complete lines that are not
/// blank, exactly as [`ndjson_items`] will see them, so the count never runs ahead of it.
/// Without a Content-Type the format is decided from the first byte that is not whitespace,
/// as [`parse`] does; a JSON array is counted when it is parsed instead.
#[derive(Debug)]
struct LineCounter {
    /// `Some(true)` NDJSON, `Some(false)` not counted here, `None` not known yet.
    ndjson: Option<bool>,
    line_start: usize,
    scanned: usize,
    events: usize,
}

impl LineCounter {
    fn new(format: Option<Format>) -> LineCounter {
        LineCounter {
            ndjson: format.map(|f| f == Format::Ndjson),
            line_start: 0,
            scanned: 0,
            events: 0,
        }
    }

    /// Scans `out[from..]` and returns the events counted so far.
    fn feed(&mut self, out: &[u8], from: usize) -> usize {
        if self.ndjson.is_none() {
            // A leading non-ASCII byte may be Unicode whitespace before a `[`: leave such a
            // body to the parser.
            self.ndjson = match out[from..].iter().find(|b| !is_ascii_space(**b)) {
                None => return 0,
                Some(b'[') => Some(false),
                Some(b) if b.is_ascii() => Some(true),
                Some(_) => Some(false),
            };
        }
        if self.ndjson != Some(true) {
            return 0;
        }
        while let Some(offset) = out[self.scanned..].iter().position(|b| *b == b'\n') {
            let end = self.scanned + offset;
            if !is_blank(&out[self.line_start..end]) {
                self.events += 1;
            }
            self.line_start = end + 1;
            self.scanned = end + 1;
        }
        self.scanned = out.len();
        self.events
    }
}

/// The ASCII characters `char::is_whitespace` (and so `str::trim`) accepts.
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | b' ')
}

/// Whether `line` is empty once trimmed as [`ndjson_items`] trims it.
fn is_blank(line: &[u8]) -> bool {
    if line.iter().all(|b| is_ascii_space(*b)) {
        return true;
    }
    if line.iter().any(|b| b.is_ascii() && !is_ascii_space(*b)) {
        return false;
    }
    std::str::from_utf8(line).is_ok_and(|text| text.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streaming_count_matches_the_parser_on_blank_and_unicode_lines() {
        let text = "{}\n\n  \t\n\u{a0}\u{3000}\n\u{b}\r\n{\"a\":1}\r\n\u{a0}x\n{}";
        let mut counter = LineCounter::new(None);
        let bytes = text.as_bytes();
        let mut counted = 0;
        for end in 1..=bytes.len() {
            counted = counter.feed(&bytes[..end], end - 1);
        }
        let parsed = ndjson_items(text, usize::MAX)
            .expect("under the limit")
            .len();
        assert_eq!(counted, 3, "complete non-blank lines");
        assert_eq!(parsed, 4, "the unterminated last line counts when parsed");
    }

    #[test]
    fn a_json_array_body_is_never_counted_by_lines() {
        let text = "\n\n[\n{},\n{}\n]\n";
        let mut counter = LineCounter::new(None);
        assert_eq!(counter.feed(text.as_bytes(), 0), 0);
    }

    #[test]
    fn an_array_over_the_limit_is_refused_at_the_first_extra_element() {
        assert_eq!(array_items("[{}, {}]", 2).expect("at the limit").len(), 2);
        let over = array_items("[{}, {}, {}, not json", 2).expect_err("over the limit");
        assert!(matches!(over, ApiError::PayloadTooLarge(_)), "{over:?}");
        let bad = array_items("{}", 2).expect_err("not an array");
        assert!(matches!(bad, ApiError::BadRequest(_)), "{bad:?}");
    }
}
