//! `GET /metrics`: the server's own health in the Prometheus text exposition format (version
//! 0.0.4). It holds counts only (no group names, no values), but those counts still tell an
//! outsider how many tenants and series the service holds and how busy it is, so it needs a
//! bearer token: the metrics scrape token (`OCP_METRICS_METRICS_TOKEN` or
//! `--metrics-token-file`) or the admin token. With neither configured it answers 404.
//!
//! What recovery dropped is reported here as well as in the log, so that an operator can alert
//! on it: `ocp_metrics_recovery_corrupt_records_skipped` above zero means acknowledged data was
//! damaged on disk; `ocp_metrics_recovery_torn_tail_bytes` above zero is the normal trace of a
//! crash in the middle of an unacknowledged append.

use crate::admin::require_operator_token;
use crate::app::{App, Phase};
use crate::error::ApiError;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

/// One metric family: help, type, and unlabelled value.
struct Out(String);

impl Out {
    fn metric(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.0, "# HELP ocp_metrics_{name} {help}");
        let _ = writeln!(self.0, "# TYPE ocp_metrics_{name} {kind}");
        let _ = writeln!(self.0, "ocp_metrics_{name} {value}");
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.metric(name, "counter", help, value);
    }

    fn gauge(&mut self, name: &str, help: &str, value: impl std::fmt::Display) {
        self.metric(name, "gauge", help, value);
    }
}

pub async fn metrics(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let accepted: Vec<_> = [&app.metrics_token, &app.admin_token]
        .into_iter()
        .flatten()
        .collect();
    if accepted.is_empty() {
        return Err(ApiError::NotFound(
            "no such endpoint: /metrics is disabled; set OCP_METRICS_METRICS_TOKEN (or --metrics-token-file) or the admin token to scrape it".into(),
        ));
    }
    require_operator_token(
        &app,
        peer,
        &headers,
        &accepted,
        "/metrics",
        "/metrics needs `Authorization: Bearer <token>` with the metrics scrape token (OCP_METRICS_METRICS_TOKEN) or the admin token",
    )?;
    Ok(render(&app))
}

fn render(app: &App) -> Response {
    let mut out = Out(String::with_capacity(4096));
    let phase = app.readiness.phase();
    out.gauge(
        "ready",
        "1 when the store is recovered and ingest and queries are served, else 0.",
        u8::from(phase == Phase::Ready),
    );
    out.gauge(
        "uptime_seconds",
        "Seconds since the server bound its listener.",
        app.readiness.uptime().as_secs(),
    );
    out.gauge(
        "http_connections_open",
        "HTTP connections open now.",
        app.connections.open(),
    );
    out.gauge(
        "http_connections_max",
        "The limit on open HTTP connections (--connections-max).",
        app.connections.max(),
    );
    out.counter(
        "http_connections_accepted_total",
        "HTTP connections accepted.",
        app.connections.accepted(),
    );
    out.counter(
        "http_connections_refused_total",
        "HTTP connections answered 503 and closed because every slot served a request.",
        app.connections.refused(),
    );
    out.counter(
        "http_connections_evicted_total",
        "Idle or half-sent HTTP connections closed to make room for a new one at the limit.",
        app.connections.evicted(),
    );
    out.gauge(
        "live_streams_open",
        "Live update streams (GET /api/v1/live) open now.",
        app.live.open(),
    );
    let (auth_failures, auth_refused) = app.auth.auth_failure_counts();
    out.counter(
        "auth_failures_total",
        "Failed authentications with an operator token (admin, /metrics) or a client secret (/oauth2/token).",
        auth_failures,
    );
    out.counter(
        "auth_failures_refused_total",
        "Failed authentications answered 429 because their source address failed too often.",
        auth_refused,
    );
    out.gauge(
        "ingest_inflight_bytes",
        "Ingest request bytes (as sent and decompressed) being parsed or committed now.",
        app.ingest_bytes.used(),
    );
    if let Some(engine) = app.readiness.engine() {
        let c = engine.counters();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        out.counter(
            "ingest_events_accepted_total",
            "Events accepted (durable and applied).",
            load(&c.accepted_events),
        );
        out.counter(
            "ingest_events_duplicate_total",
            "Events answered as duplicates of an event accepted within the dedupe horizon.",
            load(&c.duplicate_events),
        );
        out.counter(
            "ingest_events_limit_rejected_total",
            "Events refused by a state bound (distinct dimension values, real-time sessions per group).",
            load(&c.limit_rejected_events),
        );
        out.counter(
            "commits_total",
            "Group commits written to the event log (one fsync each).",
            load(&c.commits),
        );
        out.counter(
            "commits_failed_total",
            "Group commits whose log append failed (disk full, I/O error); nothing of them was accepted.",
            load(&c.failed_commits),
        );
        out.counter(
            "checkpoints_total",
            "Checkpoints written.",
            load(&c.checkpoints),
        );
        out.counter(
            "checkpoints_failed_total",
            "Checkpoints that could not be written (the log is kept instead).",
            load(&c.failed_checkpoints),
        );
        out.counter(
            "compacted_series_total",
            "Empty series dropped by compaction at checkpoints.",
            load(&c.compacted_series),
        );
        out.counter(
            "compacted_values_total",
            "Unused dimension values dropped by compaction at checkpoints.",
            load(&c.compacted_values),
        );
        out.gauge(
            "dedupe_entries",
            "Event ids remembered for deduplication.",
            load(&c.dedupe_entries),
        );
        let s = engine.stats();
        out.gauge("groups", "Groups with data.", s.groups);
        out.gauge("series", "Rollup series held.", s.series);
        out.gauge(
            "slots",
            "Rollup slots (time cells of series) held.",
            s.slots,
        );
        out.gauge(
            "dimension_values",
            "Distinct dimension values held, over all groups, families and dimensions.",
            s.interned_values,
        );
        out.gauge(
            "sessions_tracked",
            "Real-time session spans tracked.",
            s.sessions_tracked,
        );
        let r = engine.recovery();
        out.gauge(
            "recovery_seconds",
            "How long the last recovery took.",
            format!("{:.3}", r.elapsed_ms as f64 / 1000.0),
        );
        out.gauge(
            "recovery_replayed_events",
            "Events replayed from the log after the checkpoint at the last recovery.",
            r.replayed_events,
        );
        out.gauge(
            "recovery_torn_tail_bytes",
            "Bytes cut from the end of the log at the last recovery: an append cut short by a crash (never acknowledged).",
            r.log.torn_tail_bytes,
        );
        out.gauge(
            "recovery_corrupt_records_skipped",
            "Corrupt spans of the log skipped at the last recovery: damage to acknowledged data.",
            r.log.corrupt_records_skipped,
        );
        out.gauge(
            "recovery_corrupt_bytes_skipped",
            "Bytes in the corrupt spans skipped at the last recovery.",
            r.log.corrupt_bytes_skipped,
        );
        out.gauge(
            "recovery_undecodable_batches",
            "Log records that passed their checksum but could not be decoded, skipped at the last recovery.",
            r.undecodable_batches,
        );
        out.gauge(
            "recovery_checkpoints_skipped_corrupt",
            "Corrupt checkpoint files skipped for an older one (or for the whole log) at the last recovery.",
            r.checkpoints_skipped_corrupt,
        );
        out.gauge(
            "recovery_rebuilt_from_log",
            "1 when every checkpoint was corrupt and the state was rebuilt from the whole log.",
            u8::from(r.rebuilt_from_log),
        );
        out.gauge(
            "recovery_replay_duplicates_skipped",
            "Logged events skipped at the last recovery because their id was already seen (a failed append that reached the disk and was retried).",
            r.replay_duplicates_skipped,
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out.0,
    )
        .into_response()
}
