//! The application: shared state, authorization, the router and the server's life cycle.

use crate::connections::{
    self, BodyReadTimeout, ConnectionHandle, ConnectionStats, ConnectionTimeouts, DeadlineBody,
};
use crate::credentials::bearer_token;
use crate::error::ApiError;
pub use crate::readiness::{Phase, Readiness};
use crate::{admin, catalog, ingest, oauth, prometheus, query};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use ocp_metrics_auth::{AuthConfig, AuthError, Grants, OperatorToken, Reason, Registry, Scope};
use ocp_metrics_core::{Clock, Endpoint};
use ocp_metrics_service::{Backend, OpenBackend};
use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Request-level limits of the HTTP layer, units last.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest ingest body as sent (docs/api.md section 12.2: 32 MiB).
    pub body_bytes_max: usize,
    /// Largest ingest body once decompressed (docs/api.md section 12.2: 256 MiB).
    pub decoded_bytes_max: usize,
    /// Most events in one ingest request.
    pub events_per_request_max: usize,
    /// Ingest bytes being parsed or committed at once, as sent plus as decompressed so far;
    /// past it, ingest answers 503 with Retry-After instead of queueing without bound (413 if
    /// one request alone needs more).
    pub inflight_ingest_bytes_max: usize,
    /// Open HTTP connections at once. When all are open, a new connection closes the one idle
    /// (or waiting for headers, or for an unauthenticated body) the longest; only when every
    /// one serves a request is it answered 503 with Retry-After and closed.
    pub connections_max: usize,
    /// While the store recovers, a request (other than `/healthz`, `/readyz`, `/metrics`) waits
    /// up to this long for recovery to finish before it is answered 503 with Retry-After, in
    /// milliseconds. A short wait hides a sub-second recovery from clients that ignore
    /// `/readyz`; a long recovery still answers 503.
    pub recovery_request_wait_ms: u64,
    /// Time a client has to send a request's headers, counted from when the server starts
    /// waiting for them, and so also how long a keep-alive connection may sit idle, in
    /// milliseconds.
    pub header_read_timeout_ms: u64,
    /// Time a client has to send a request's body, counted from the end of its headers, in
    /// milliseconds.
    pub body_read_timeout_ms: u64,
}

/// Default of [`Limits::connections_max`]. Each connection costs a few kilobytes plus its
/// request's buffers; ingest bytes and query work have their own bounds.
pub const CONNECTIONS_MAX_DEFAULT: usize = 1024;
/// Default of [`Limits::recovery_request_wait_ms`].
pub const RECOVERY_REQUEST_WAIT_MS_DEFAULT: u64 = 2_000;
/// Default of [`Limits::header_read_timeout_ms`]: a client sends its headers in one packet,
/// even over a slow mobile link well under a second; ten seconds leave room for a congested
/// one while a slowloris holds a socket for at most that long. Keep-alive clients (ureq,
/// hyper, curl) reopen a connection the server closed while idle.
pub const HEADER_READ_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default of [`Limits::body_read_timeout_ms`]: the largest ingest body (32 MiB) arrives in
/// a minute at 4.5 Mbit/s; a client slower than that should send smaller requests.
pub const BODY_READ_TIMEOUT_MS_DEFAULT: u64 = 60_000;
/// Time an answer may wait for the client to read it before the connection is closed: a
/// client that stops reading must not keep a connection (and its answer's memory) forever.
pub const RESPONSE_WRITE_STALL_TIMEOUT_MS: u64 = 30_000;
/// Largest body of `POST /oauth2/token`, in bytes. The form holds a grant type, a client id
/// and secret and a scope list: a few hundred bytes. The body is read before the client is
/// authenticated, so it is small and read while the connection stays evictable.
pub const TOKEN_BODY_BYTES_MAX: usize = 16 << 10;
/// Largest body of an admin request, in bytes: a client or token with a name, scopes and a
/// list of groups; 64 KiB hold over a thousand group names. Read only after the admin token
/// was checked.
pub const ADMIN_BODY_BYTES_MAX: usize = 64 << 10;
/// Largest body of a request to a path that reads none (GET routes, unknown paths), in bytes.
/// Such a body is never read; the bound refuses a declared large one at once.
pub const UNREAD_BODY_BYTES_MAX: usize = 16 << 10;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes_max: 32 << 20,
            decoded_bytes_max: 256 << 20,
            events_per_request_max: 200_000,
            inflight_ingest_bytes_max: 256 << 20,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            recovery_request_wait_ms: RECOVERY_REQUEST_WAIT_MS_DEFAULT,
            header_read_timeout_ms: HEADER_READ_TIMEOUT_MS_DEFAULT,
            body_read_timeout_ms: BODY_READ_TIMEOUT_MS_DEFAULT,
        }
    }
}

/// Everything `serve` needs.
#[derive(Debug)]
pub struct ServerConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    /// Bearer token of the admin API; without it the admin API answers 404.
    pub admin_token: Option<OperatorToken>,
    /// Bearer token that may scrape `/metrics` (as may the admin token); with neither set,
    /// `/metrics` answers 404.
    pub metrics_token: Option<OperatorToken>,
    pub clock: Arc<dyn Clock>,
    pub limits: Limits,
    /// The API clients and personal access tokens: on files in the data directory, opened by
    /// the binary ([`open_file_registry`]), for a single node; or shared through the cluster's
    /// credentials bucket in cluster mode, opened after the listener is bound (it may have to
    /// wait for NATS, and `/healthz` must answer meanwhile).
    pub registry: Credentials,
    /// Opens the backend (the embedded engine, or a cluster node) once the listener is bound.
    pub backend: BackendOpener,
    /// Test seam: when set, recovery waits until this is notified, so a test can observe the
    /// server while it recovers. `None` in production.
    pub recovery_hold: Option<Arc<tokio::sync::Notify>>,
}

/// How the server gets its registry of clients and tokens.
pub enum Credentials {
    /// Already open.
    Open(Arc<Registry>),
    /// Opened in the background once the listener is bound, before the backend.
    Later(OpenRegistry),
}

/// Opens a registry (see [`Credentials::Later`]).
pub type OpenRegistry = Box<
    dyn FnOnce() -> ocp_metrics_service::BoxFuture<'static, Result<Arc<Registry>, String>> + Send,
>;

impl From<Arc<Registry>> for Credentials {
    fn from(registry: Arc<Registry>) -> Credentials {
        Credentials::Open(registry)
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Open(r) => f.debug_tuple("Open").field(r).finish(),
            Credentials::Later(_) => f.write_str("Later"),
        }
    }
}

/// Shared state of every handler; cheap to clone.
#[derive(Debug, Clone)]
pub struct App {
    pub readiness: Arc<Readiness>,
    pub admin_token: Option<OperatorToken>,
    pub metrics_token: Option<OperatorToken>,
    pub limits: Limits,
    pub ingest_bytes: Arc<InflightBytes>,
    pub connections: Arc<ConnectionStats>,
    /// Open live streams (`GET /api/v1/live`), counted apart from connections.
    pub live: Arc<crate::live::LiveStreams>,
}

impl App {
    /// The clients and tokens, or a 503 while they are being opened (only requests that skip
    /// the readiness gate can see that).
    pub fn auth(&self) -> Result<&Arc<Registry>, ApiError> {
        self.readiness
            .registry()
            .ok_or_else(|| recovering(&self.readiness.phase()))
    }

    /// The recovered backend, or a 503 telling the caller to retry while the store recovers.
    pub fn backend(&self) -> Result<&Arc<dyn Backend>, ApiError> {
        match self.readiness.backend() {
            Some(backend) => Ok(backend),
            None => Err(recovering(&self.readiness.phase())),
        }
    }

    /// Waits for recovery to finish and returns the backend, or why recovery failed.
    pub async fn ready(&self) -> anyhow::Result<Arc<dyn Backend>> {
        loop {
            match self.readiness.settled(Duration::from_secs(3600)).await {
                Phase::Ready => {
                    return self
                        .readiness
                        .backend()
                        .cloned()
                        .ok_or_else(|| anyhow::anyhow!("ready without a backend"));
                }
                Phase::Failed(m) => anyhow::bail!("recovering the store failed: {m}"),
                Phase::Recovering => {}
            }
        }
    }

    /// Authenticates the bearer token, checks the scope and the caller's rate.
    pub fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<Grants, ApiError> {
        let token = bearer_token(headers).ok_or(AuthError::Unauthenticated(Reason::Missing))?;
        let auth = self.auth()?;
        let grants = auth.authenticate(token)?;
        grants.require_scope(scope)?;
        if let Err(wait) = auth.check_rate(&grants.subject) {
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

/// A counter of in-flight ingest bytes with a ceiling: the bytes of every body being parsed
/// or committed, as sent and, for a compressed body, as decompressed so far.
#[derive(Debug)]
pub struct InflightBytes {
    used: AtomicUsize,
    max: usize,
}

/// Gives the bytes back when the request is done.
#[derive(Debug)]
pub struct InflightPermit {
    owner: Arc<InflightBytes>,
    bytes: usize,
}

/// Why an in-flight permit could not grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflightRefusal {
    /// Other requests hold the rest of the budget: retry later.
    Busy,
    /// This request alone needs more than the whole budget: it can never fit.
    OverBudget,
}

impl InflightBytes {
    pub fn new(max: usize) -> Self {
        InflightBytes {
            used: AtomicUsize::new(0),
            max,
        }
    }

    /// Bytes held by requests right now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The ceiling, in bytes.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Takes `bytes` of the budget for a request's body as sent. A request alone is let in
    /// whatever its size (its body is bounded by `Limits::body_bytes_max`), so that a budget
    /// below the body limit still serves one request at a time.
    pub fn try_acquire(self: &Arc<Self>, bytes: usize) -> Result<InflightPermit, ApiError> {
        let before = self.used.fetch_add(bytes, Ordering::AcqRel);
        if before > 0 && before + bytes > self.max {
            self.used.fetch_sub(bytes, Ordering::AcqRel);
            return Err(busy_ingesting());
        }
        Ok(InflightPermit {
            owner: self.clone(),
            bytes,
        })
    }
}

impl InflightPermit {
    /// Takes `bytes` more of the budget (decompressed output as it is produced); never lets
    /// the total pass the ceiling.
    pub fn grow(&mut self, bytes: usize) -> Result<(), InflightRefusal> {
        let before = self.owner.used.fetch_add(bytes, Ordering::AcqRel);
        if before + bytes > self.owner.max {
            self.owner.used.fetch_sub(bytes, Ordering::AcqRel);
            return Err(if before <= self.bytes {
                InflightRefusal::OverBudget
            } else {
                InflightRefusal::Busy
            });
        }
        self.bytes += bytes;
        Ok(())
    }

    /// Gives back all but `bytes` of what this permit holds (a reservation that turned out
    /// larger than the body).
    pub fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.owner
                .used
                .fetch_sub(self.bytes - bytes, Ordering::AcqRel);
            self.bytes = bytes;
        }
    }
}

impl Drop for InflightPermit {
    fn drop(&mut self) {
        self.owner.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// The 503 of an ingest request that finds the in-flight budget taken by others.
pub fn busy_ingesting() -> ApiError {
    ApiError::Unavailable {
        message: "the server is busy ingesting; retry after a short pause".into(),
        retry_after_seconds: 1,
    }
}

/// Builds the router over a ready `App`.
pub fn router(app: App) -> Router {
    let mut r = Router::new()
        .route("/healthz", get(health))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus::metrics))
        .route("/ingest/v1/events", post(ingest::ingest))
        .route("/oauth2/token", post(oauth::token))
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
        .route("/api/v1/catalog", get(catalog::catalog))
        .route("/api/v1/catalog/values", get(catalog::catalog_values))
        .route("/api/v1/live", get(crate::live::live));
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
    r = crate::openapi::routes(crate::assets::routes(r));
    r.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), gate))
        .layer(middleware::from_fn_with_state(app.clone(), bound_body))
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn(crate::access_log::access_log))
        .with_state(app)
}

/// Reads a request body of at most `bytes_max` bytes; `too_large` says what to send instead.
/// A body that does not arrive within `Limits::body_read_timeout_ms` is answered 408.
pub async fn read_body(
    body: Body,
    bytes_max: usize,
    too_large: impl FnOnce() -> String,
) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, bytes_max)
        .await
        .map_err(|error| {
            if let Some(timeout) = find_source::<BodyReadTimeout>(&error) {
                ApiError::RequestTimeout(format!(
                    "{timeout}; send the body at once, or send less per request"
                ))
            } else if find_source::<hyper::Error>(&error).is_some() {
                ApiError::BadRequest(format!("the request body could not be read: {error}"))
            } else {
                ApiError::PayloadTooLarge(too_large())
            }
        })
}

/// The first error of type `E` in `error`'s chain of sources.
fn find_source<'e, E: std::error::Error + 'static>(
    error: &'e (dyn std::error::Error + 'static),
) -> Option<&'e E> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// How a route's body is read, and its bound.
#[derive(Debug, Clone, Copy)]
struct BodyPolicy {
    bytes_max: usize,
    read: BodyRead,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyRead {
    /// The handler authenticates the caller, then reads the body with [`read_body`] and the
    /// same bound (ingest, queries).
    ByHandler,
    /// Read here once the admin token was checked, so that a caller without it never gets a
    /// byte of its body buffered.
    AfterAdminAuth,
    /// Read here before anyone is authenticated (the token endpoint, whose client may
    /// authenticate in the body); the connection stays evictable meanwhile.
    Anonymous,
    /// The route reads no body.
    Unread,
}

fn body_policy(path: &str, limits: &Limits) -> BodyPolicy {
    let (bytes_max, read) = if path == "/ingest/v1/events" {
        (limits.body_bytes_max, BodyRead::ByHandler)
    } else if path == "/oauth2/token" {
        (TOKEN_BODY_BYTES_MAX, BodyRead::Anonymous)
    } else if path.starts_with("/admin/") {
        (ADMIN_BODY_BYTES_MAX, BodyRead::AfterAdminAuth)
    } else if Endpoint::ALL.iter().any(|e| e.path() == path) {
        (query::QUERY_BODY_BYTES_MAX, BodyRead::ByHandler)
    } else {
        (UNREAD_BODY_BYTES_MAX, BodyRead::Unread)
    };
    BodyPolicy { bytes_max, read }
}

/// Bounds every request body before a byte of it is buffered: a declared length over the
/// route's bound is refused at once, every body gets the read deadline, and the bodies of
/// the admin API and the token endpoint are read here, with their small bounds.
async fn bound_body(State(app): State<App>, request: Request, next: Next) -> Response {
    match bounded(&app, request).await {
        Ok(request) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

async fn bounded(app: &App, request: Request) -> Result<Request, ApiError> {
    let policy = body_policy(request.uri().path(), &app.limits);
    let too_large = || {
        format!(
            "the request body is over {} bytes, the limit of this endpoint; send a smaller one",
            policy.bytes_max
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > policy.bytes_max as u64) {
        return Err(ApiError::PayloadTooLarge(too_large()));
    }
    let (parts, body) = request.into_parts();
    let timeout = Duration::from_millis(app.limits.body_read_timeout_ms);
    let body = Body::new(DeadlineBody::new(body, timeout));
    let body = match policy.read {
        BodyRead::ByHandler | BodyRead::Unread => body,
        BodyRead::AfterAdminAuth => {
            admin::admin(app, admin::peer(&parts)?, &parts.headers)?;
            Body::from(read_body(body, policy.bytes_max, too_large).await?)
        }
        BodyRead::Anonymous => {
            let _evictable = parts
                .extensions
                .get::<ConnectionHandle>()
                .map(ConnectionHandle::evictable_while);
            Body::from(read_body(body, policy.bytes_max, too_large).await?)
        }
    };
    Ok(Request::from_parts(parts, body))
}

/// Paths answered whatever the phase: liveness, readiness and the operator's metrics.
const UNGATED_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Holds requests back while the store recovers: each waits up to
/// `Limits::recovery_request_wait_ms`, then is answered 503 with Retry-After.
async fn gate(State(app): State<App>, request: Request, next: Next) -> Response {
    if app.readiness.backend().is_none() && !UNGATED_PATHS.contains(&request.uri().path()) {
        let wait = Duration::from_millis(app.limits.recovery_request_wait_ms);
        let phase = app.readiness.settled(wait).await;
        if phase != Phase::Ready {
            return recovering(&phase).into_response();
        }
    }
    next.run(request).await
}

/// The 503 of a request that arrives before the store is ready.
fn recovering(phase: &Phase) -> ApiError {
    let message = match phase {
        Phase::Failed(_) => {
            "the server could not recover its store and is stopping; see its log".to_string()
        }
        _ => "recovering: the server is loading its checkpoint and replaying its event log; retry in a few seconds (GET /readyz answers 200 once it is ready)".to_string(),
    };
    ApiError::Unavailable {
        message,
        retry_after_seconds: 2,
    }
}

/// Liveness: the process answers HTTP.
async fn health() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

/// Readiness: the store is recovered and ingest and queries are served.
async fn readyz(State(app): State<App>) -> Response {
    match app.readiness.phase() {
        Phase::Ready => match app.readiness.backend().and_then(|b| b.not_ready()) {
            None => axum::Json(serde_json::json!({"status": "ready"})).into_response(),
            Some(why) => ApiError::Unavailable {
                message: why,
                retry_after_seconds: 1,
            }
            .into_response(),
        },
        Phase::Recovering => {
            let mut r = recovering(&Phase::Recovering).into_response();
            if let Ok(body) = serde_json::to_vec(&serde_json::json!({
                "status": "recovering",
                "message": "the server is recovering its store; it answers 200 here once ingest and queries are served",
                "elapsed_ms": app.readiness.uptime().as_millis() as u64,
            })) {
                *r.body_mut() = axum::body::Body::from(body);
            }
            r
        }
        Phase::Failed(m) => ApiError::Unavailable {
            message: format!("recovering the store failed: {m}"),
            retry_after_seconds: 5,
        }
        .into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; see the API documentation for the paths under /metrics-api/v3 and /ingest/v1".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed(
        "this method is not allowed here; query endpoints take POST with a JSON body".into(),
    )
}

/// A bound server. The store recovers in the background from the moment of binding: until it
/// is ready, `/healthz` answers 200, `/readyz` 503 and everything else 503 with Retry-After.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    app: App,
    recovery: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds the listener and starts recovering the store in the background (see
    /// [`App::ready`] to wait for it).
    pub async fn bind(config: ServerConfig) -> anyhow::Result<Server> {
        ocp_metrics_store::private::secure_data_dir(&config.data_dir)?;
        let listener = tokio::net::TcpListener::bind(&config.listen).await?;
        let readiness = Arc::new(Readiness::new());
        let later = match config.registry {
            Credentials::Open(registry) => {
                readiness.set_registry(registry);
                None
            }
            Credentials::Later(open) => Some(open),
        };
        let app = App {
            readiness,
            admin_token: config.admin_token,
            metrics_token: config.metrics_token,
            ingest_bytes: Arc::new(InflightBytes::new(config.limits.inflight_ingest_bytes_max)),
            connections: Arc::new(ConnectionStats::new(config.limits.connections_max)),
            live: Arc::default(),
            limits: config.limits,
        };
        let recovery = tokio::spawn(recover(
            app.readiness.clone(),
            later,
            config.backend,
            config.recovery_hold,
        ));
        Ok(Server {
            listener,
            app,
            recovery,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    /// Serves until `shutdown` resolves (or recovery fails), then drains in-flight requests,
    /// waits for a recovery still running, and checkpoints. A failed recovery is an error.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let readiness = self.app.readiness.clone();
        let failed = {
            let readiness = readiness.clone();
            async move { readiness.failed().await }
        };
        let live = self.app.live.clone();
        let stop = async move {
            tokio::select! {
                () = shutdown => {},
                () = failed => {},
            }
            // Live streams never end on their own, and a graceful shutdown waits for them.
            live.close_all();
        };
        let timeouts = ConnectionTimeouts {
            header_read: Duration::from_millis(self.app.limits.header_read_timeout_ms.max(1)),
            write_stall: Duration::from_millis(RESPONSE_WRITE_STALL_TIMEOUT_MS),
        };
        let connections = self.app.connections.clone();
        connections::serve(self.listener, router(self.app), connections, timeouts, stop).await;
        let _ = self.recovery.await;
        match readiness.phase() {
            Phase::Failed(m) => anyhow::bail!("recovering the store failed: {m}"),
            Phase::Ready | Phase::Recovering => {}
        }
        if let Some(backend) = readiness.backend() {
            backend.shutdown().await;
        }
        Ok(())
    }
}

/// Opens the registry of a single node: clients, tokens and the signing key in files of
/// `data_dir`, which is created or tightened (0700, files 0600) first, so that the signing key
/// is never read from a directory others can read.
pub fn open_file_registry(
    data_dir: &Path,
    config: AuthConfig,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<Registry>> {
    ocp_metrics_store::private::secure_data_dir(data_dir)?;
    Ok(Arc::new(Registry::open(data_dir, config, clock)?))
}

/// Opens the backend (recovering its store) and publishes it, or the failure, to `readiness`.
async fn recover(
    readiness: Arc<Readiness>,
    registry: Option<OpenRegistry>,
    open: BackendOpener,
    hold: Option<Arc<tokio::sync::Notify>>,
) {
    if let Some(hold) = hold {
        hold.notified().await;
    }
    if let Some(open_registry) = registry {
        match open_registry().await {
            Ok(r) => readiness.set_registry(r),
            Err(e) => {
                tracing::error!(error = %e, "opening the clients and tokens failed");
                return readiness.set_failed(e);
            }
        }
    }
    match (open.0)().await {
        Ok(backend) => readiness.set_ready(backend),
        Err(e) => {
            tracing::error!(error = %e, "recovering the store failed");
            readiness.set_failed(e);
        }
    }
}

/// The binary's choice of backend, opened once the listener is bound (see [`OpenBackend`]).
pub struct BackendOpener(pub OpenBackend);

impl std::fmt::Debug for BackendOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackendOpener")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inflight_budget_tells_a_request_that_can_never_fit_from_one_that_must_wait() {
        let budget = Arc::new(InflightBytes::new(100));
        let mut first = budget.try_acquire(150).expect("a request alone is let in");
        first.shrink_to(40);
        assert_eq!(budget.used(), 40);
        assert_eq!(first.grow(70), Err(InflightRefusal::OverBudget));
        assert_eq!(budget.used(), 40, "a refused growth takes nothing");
        let mut second = budget.try_acquire(30).expect("fits beside the first");
        assert_eq!(second.grow(40), Err(InflightRefusal::Busy));
        second.grow(30).expect("fits exactly");
        assert_eq!(budget.used(), 100);
        drop(first);
        drop(second);
        assert_eq!(budget.used(), 0);
    }
}
