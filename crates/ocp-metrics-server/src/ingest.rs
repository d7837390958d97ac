//! `POST /ingest/v1/events`: NDJSON or a JSON array, optionally gzip, validated per event,
//! deduplicated and made durable by the engine before the answer.

use crate::app::{App, Limits};
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
use serde_json::value::RawValue;
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

pub async fn ingest(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let grants = app.authorize(&headers, Scope::EventsWrite)?;
    let format = format_of(&headers)?;
    let gzip = gzip_of(&headers)?;
    let limits = app.limits.clone();
    let raw = axum::body::to_bytes(body, limits.body_bytes_max)
        .await
        .map_err(|_| {
            ApiError::PayloadTooLarge(format!(
                "the request body is over {} bytes; send fewer events per request",
                limits.body_bytes_max
            ))
        })?;
    let _permit = app.ingest_bytes.try_acquire(raw.len())?;
    let engine = app.engine()?;
    let now = engine.now();
    let parsed =
        tokio::task::spawn_blocking(move || parse(raw, gzip, format, &limits, &grants, now))
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
) -> Result<Parsed, ApiError> {
    // Parse the body where it lies; only a compressed one needs a buffer of its own.
    let decoded;
    let body: &[u8] = if gzip {
        decoded = gunzip(&raw, limits.decoded_bytes_max)?;
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
    let items: Vec<&str> = match format {
        Format::Ndjson => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect(),
        Format::JsonArray => serde_json::from_str::<Vec<&RawValue>>(text)
            .map_err(|e| {
                ApiError::BadRequest(format!(
                    "the body is not a JSON array of event objects ({e})"
                ))
            })?
            .into_iter()
            .map(RawValue::get)
            .collect(),
    };
    if items.len() > limits.events_per_request_max {
        return Err(ApiError::PayloadTooLarge(format!(
            "the request holds {} events; send at most {} per request",
            items.len(),
            limits.events_per_request_max
        )));
    }
    validate(&items, grants, now)
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

/// Decompresses with a hard bound on the output, so a small gzip bomb cannot fill memory.
fn gunzip(raw: &[u8], max: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(max));
    let mut decoder = flate2::read::MultiGzDecoder::new(raw).take(max as u64 + 1);
    decoder.read_to_end(&mut out).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body is not valid gzip ({e}); compress it with gzip or drop Content-Encoding"
        ))
    })?;
    if out.len() > max {
        return Err(ApiError::PayloadTooLarge(format!(
            "the body decompresses to over {max} bytes; send fewer events per request"
        )));
    }
    Ok(out)
}
