//! The application: shared state, authorization, the router and the server's life cycle.

use crate::error::ApiError;
use crate::{admin, ingest, query};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use ocp_metrics_auth::{AuthConfig, Grants, Registry, Scope, bearer_token};
use ocp_metrics_core::{Clock, Endpoint};
use ocp_metrics_store::{Engine, EngineConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Request-level limits of the HTTP layer, units last.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest ingest body as sent (CONTRACT section 2: 32 MiB).
    pub body_bytes_max: usize,
    /// Largest ingest body once decompressed (CONTRACT section 2: 256 MiB).
    pub decoded_bytes_max: usize,
    /// Most events in one ingest request.
    pub events_per_request_max: usize,
    /// Ingest bytes (as sent) being parsed or committed at once; past it, ingest answers 503
    /// with Retry-After instead of queueing without bound.
    pub inflight_ingest_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes_max: 32 << 20,
            decoded_bytes_max: 256 << 20,
            events_per_request_max: 200_000,
            inflight_ingest_bytes_max: 256 << 20,
        }
    }
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    pub admin_token: Option<String>,
    pub clock: Arc<dyn Clock>,
    pub limits: Limits,
    pub auth: AuthConfig,
    pub engine: EngineConfig,
}

/// Shared state of every handler; cheap to clone.
#[derive(Debug, Clone)]
pub struct App {
    pub engine: Engine,
    pub auth: Arc<Registry>,
    pub admin_token: Option<Arc<str>>,
    pub limits: Limits,
    pub ingest_bytes: Arc<InflightBytes>,
}

impl App {
    /// Authenticates the bearer token, checks the scope and the caller's rate.
    pub fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<Grants, ApiError> {
        let authz = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let grants = self.auth.authenticate(bearer_token(authz)?)?;
        grants.require_scope(scope)?;
        if let Err(wait) = self.auth.check_rate(&grants.subject) {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(ApiError::RateLimited {
                message: format!(
                    "too many requests for this token; retry after {secs} s or lower the request rate"
                ),
                retry_after_seconds: secs.max(1),
            });
        }
        Ok(grants)
    }
}

/// A counter of in-flight ingest bytes with a ceiling.
#[derive(Debug)]
pub struct InflightBytes {
    used: AtomicUsize,
    max: usize,
}

/// Gives the bytes back when the request is done.
#[derive(Debug)]
pub struct InflightPermit<'a> {
    owner: &'a InflightBytes,
    bytes: usize,
}

impl InflightBytes {
    pub fn new(max: usize) -> Self {
        InflightBytes {
            used: AtomicUsize::new(0),
            max,
        }
    }

    pub fn try_acquire(&self, bytes: usize) -> Result<InflightPermit<'_>, ApiError> {
        let before = self.used.fetch_add(bytes, Ordering::AcqRel);
        if before > 0 && before + bytes > self.max {
            self.used.fetch_sub(bytes, Ordering::AcqRel);
            return Err(ApiError::Unavailable {
                message: "the server is busy ingesting; retry after a short pause".into(),
                retry_after_seconds: 1,
            });
        }
        Ok(InflightPermit { owner: self, bytes })
    }
}

impl Drop for InflightPermit<'_> {
    fn drop(&mut self) {
        self.owner.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Builds the router over a ready `App`.
pub fn router(app: App) -> Router {
    let mut r = Router::new()
        .route("/healthz", get(health))
        .route("/readyz", get(health))
        .route("/ingest/v1/events", post(ingest::ingest))
        .route("/oauth2/token", post(admin::token))
        .route(
            "/admin/v1/clients",
            post(admin::create_client).get(admin::list_clients),
        )
        .route("/admin/v1/clients/{id}", delete(admin::delete_client))
        .route(
            "/admin/v1/tokens",
            post(admin::create_token).get(admin::list_tokens),
        )
        .route("/admin/v1/tokens/{id}", delete(admin::revoke_token))
        .route("/api/v1/catalog", get(admin::catalog))
        .route("/api/v1/catalog/values", get(admin::catalog_values));
    for endpoint in Endpoint::ALL {
        r = r.route(
            endpoint.path(),
            post(
                move |State(app): State<App>, headers: HeaderMap, body: axum::body::Body| {
                    query::query(app, endpoint, headers, body)
                },
            ),
        );
    }
    r = crate::assets::routes(r);
    r.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::disable())
        .with_state(app)
}

async fn health() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; see the API documentation for the paths under /metrics-api/v3 and /ingest/v1".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed(
        "this method is not allowed here; query endpoints take POST with a JSON body".into(),
    )
}

/// A bound, recovered server, ready to run.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    app: App,
}

impl Server {
    /// Opens the store (recovering it) and the auth registry, and binds the listener.
    pub async fn bind(config: ServerConfig) -> anyhow::Result<Server> {
        std::fs::create_dir_all(&config.data_dir)?;
        let dir = config.data_dir.clone();
        let (clock, engine_config) = (config.clock.clone(), config.engine.clone());
        let engine =
            tokio::task::spawn_blocking(move || Engine::open(&dir, engine_config, clock)).await??;
        let r = engine.recovery();
        tracing::info!(
            replayed_events = r.replayed_events,
            torn_tail_bytes = r.log.torn_tail_bytes,
            corrupt_records_skipped = r.log.corrupt_records_skipped,
            elapsed_ms = r.elapsed_ms,
            "store recovered"
        );
        let clock = config.clock.clone();
        let auth = Registry::open(
            &config.data_dir,
            config.auth.clone(),
            Arc::new(move || clock.now()),
        )?;
        let listener = tokio::net::TcpListener::bind(&config.listen).await?;
        let app = App {
            engine,
            auth: Arc::new(auth),
            admin_token: config.admin_token.filter(|t| !t.is_empty()).map(Arc::from),
            ingest_bytes: Arc::new(InflightBytes::new(config.limits.inflight_ingest_bytes_max)),
            limits: config.limits,
        };
        Ok(Server { listener, app })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests and checkpoints.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let engine = self.app.engine.clone();
        axum::serve(self.listener, router(self.app))
            .with_graceful_shutdown(shutdown)
            .await?;
        engine.shutdown().await;
        Ok(())
    }
}
