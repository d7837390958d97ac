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
use ocp_metrics_service::SampleKind;
use std::fmt::Write;
use std::net::SocketAddr;

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
    let (auth_failures, auth_refused) = app
        .readiness
        .registry()
        .map_or((0, 0), |auth| auth.auth_failure_counts());
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
    if let Some(backend) = app.readiness.backend() {
        for sample in backend.samples() {
            let kind = match sample.kind {
                SampleKind::Counter => "counter",
                SampleKind::Gauge => "gauge",
            };
            out.metric(sample.name, kind, sample.help, sample.value);
        }
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
