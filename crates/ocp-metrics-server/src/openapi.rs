//! The OpenAPI 3.1 description of the server, served at `GET /openapi.json`, and the
//! interactive reference page at `GET /docs` (Swagger UI, embedded in the binary).
//!
//! The document is built from the code so that it cannot drift: the event, ingest-answer,
//! admin-request and error schemas are derived from the types the handlers use, and the query
//! endpoints, their metrics, filters and downsamplings come from the core's endpoint catalog.
//! The answers that handlers write as ad-hoc JSON are described here, and tests hold those
//! descriptions to real answers. A test also fails when the router serves a route that this
//! document lacks (or documents one that does not exist).

use crate::app::App;
use crate::error::{ApiError, ErrorAnswer, OAuthErrorAnswer};
use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ocp_metrics_core::Endpoint;
use serde_json::{Value, json};
use std::sync::OnceLock;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, Header, InfoBuilder, OpenApi, OpenApiBuilder, PathItem,
    PathsBuilder, Ref, RefOr, Required, ResponseBuilder, Schema,
};
use utoipa::{PartialSchema, ToSchema};

/// The Content-Security-Policy of the `/docs` page: scripts, styles and requests from this
/// server only, and no inline script (Swagger UI's start-up is the file `docs.js`). Swagger UI
/// sets element styles from script (allowed without `'unsafe-inline'`); `data:` images are its
/// embedded icons. Checked in headless Chromium: the page renders, authorizes and tries out a
/// query with no violation reported.
pub const DOCS_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self' data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Adds `GET /openapi.json`, `GET /docs` and the page's files under `/docs/`.
pub fn routes(r: Router<App>) -> Router<App> {
    r.route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs_page))
        .route("/docs/{file}", get(docs_file))
}

/// The document, built once.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        serde_json::to_string(&document()).expect("the OpenAPI document serializes")
    })
}

async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
        .into_response()
}

const DOCS_PAGE: &str = include_str!("../assets/docs.html");

/// The page's files: name under `/docs/`, content type, bytes.
const DOCS_FILES: &[(&str, &str, &[u8])] = &[
    (
        "docs.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/docs.js"),
    ),
    (
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/vendor/swagger-ui/swagger-ui-bundle.js"),
    ),
    (
        "swagger-ui.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/vendor/swagger-ui/swagger-ui.css"),
    ),
    (
        "LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../assets/vendor/swagger-ui/LICENSE"),
    ),
    (
        "NOTICE",
        "text/plain; charset=utf-8",
        include_bytes!("../assets/vendor/swagger-ui/NOTICE"),
    ),
    (
        "swagger-ui-bundle.js.LICENSE.txt",
        "text/plain; charset=utf-8",
        include_bytes!("../assets/vendor/swagger-ui/swagger-ui-bundle.js.LICENSE.txt"),
    ),
];

async fn docs_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                DOCS_CONTENT_SECURITY_POLICY,
            ),
        ],
        DOCS_PAGE,
    )
        .into_response()
}

async fn docs_file(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (_, content_type, bytes) = DOCS_FILES
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no file `{file}` under /docs/; the API reference is at /docs"
            ))
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        *bytes,
    )
        .into_response())
}

/// Security scheme names.
const BEARER: &str = "bearer";
const ADMIN: &str = "admin";
const CLIENT_BASIC: &str = "client_basic";

/// Builds the whole document.
pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for (path, method, operation) in operations() {
        paths = paths.path(path, PathItem::new(method, operation));
    }
    let mut openapi = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("OCP Metrics API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Ingest of IVR and chat events, the OCP Metrics query API (v3, and the \
                     deprecated v2), credentials, the catalog and the operator endpoints. The \
                     prose reference, with every metric's definition, is docs/api.md in the \
                     project. Every error answer is `{\"message\": \"...\"}`, a sentence that \
                     says what is wrong and how to fix it.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components()))
        .build();
    openapi.tags = Some(
        [
            ("ingest", "Events in."),
            ("query", "The OCP Metrics query API."),
            (
                "catalog",
                "What can be asked: endpoints, groups, dimension values.",
            ),
            ("auth", "The OAuth 2.0 client-credentials token endpoint."),
            (
                "admin",
                "API clients and personal access tokens (admin token).",
            ),
            (
                "operator",
                "Liveness, readiness and the server's own metrics.",
            ),
            ("web", "The Reporting page, this reference and their files."),
        ]
        .into_iter()
        .map(|(name, description)| {
            TagBuilder::new()
                .name(name)
                .description(Some(description))
                .build()
        })
        .collect(),
    );
    openapi
}

fn components() -> utoipa::openapi::Components {
    let mut c = ComponentsBuilder::new()
        .schema_from::<crate::wire::WireEvent<'static>>()
        .schema_from::<crate::ingest::IngestAnswer>()
        .schema_from::<crate::ingest::EventErrorAnswer>()
        .schema_from::<ErrorAnswer>()
        .schema_from::<OAuthErrorAnswer>()
        .schema_from::<crate::admin::NewClient>()
        .schema_from::<crate::admin::NewToken>()
        .security_scheme(
            BEARER,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT access token or ocpm_pat_ personal access token")
                    .description(Some(
                        "An access token from POST /oauth2/token or a personal access token \
                         from the admin API, with the scope the operation needs \
                         (`metrics:read` or `events:write`).",
                    ))
                    .build(),
            ),
        )
        .security_scheme(
            ADMIN,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The server's admin token (OCP_METRICS_ADMIN_TOKEN). Without one \
                         configured, the admin API answers 404.",
                    ))
                    .build(),
            ),
        )
        .security_scheme(
            CLIENT_BASIC,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "An API client's id and secret; the form fields client_id and \
                         client_secret are the alternative.",
                    ))
                    .build(),
            ),
        );
    for (name, schema) in described_schemas() {
        c = c.schema(name, schema);
    }
    for endpoint in Endpoint::ALL {
        c = c.schema(query_schema_name(endpoint), query_body_schema(endpoint));
    }
    c.build()
}

/// A schema given as JSON Schema text.
fn schema(value: Value) -> Schema {
    serde_json::from_value(value).expect("a valid JSON schema")
}

fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

/// Answers that handlers write as ad-hoc JSON (or that another crate serializes). The tests
/// below compare these with real answers.
fn described_schemas() -> Vec<(&'static str, Schema)> {
    let strings = json!({"type": "array", "items": {"type": "string"}});
    // A client's or token's description, plus the fields of one kind of answer.
    let info = |extra: Value| {
        let mut properties = json!({
            "id": {"type": "string"},
            "name": {"type": "string"},
            "groups": strings.clone(),
            "scopes": strings.clone(),
            "created_at": {"type": "string", "format": "date-time"},
        });
        let mut required: Vec<String> = ["id", "name", "groups", "scopes", "created_at"]
            .map(String::from)
            .into();
        if let (Value::Object(p), Value::Object(e)) = (&mut properties, extra) {
            required.extend(e.keys().cloned());
            p.extend(e);
        }
        schema(json!({"type": "object", "required": required, "properties": properties}))
    };
    let nullable_time = json!({"type": ["string", "null"], "format": "date-time"});
    vec![
        (
            "Series",
            schema(json!({
                "type": "object",
                "description": "One series of a query answer.",
                "required": ["metric", "tags", "dps"],
                "properties": {
                    "metric": {"type": "string", "description": "The metric's name as requested."},
                    "tags": {"type": "object", "additionalProperties": {"type": "string"},
                             "description": "`group`, then the dimensions in the endpoint's order; values are strings."},
                    "dps": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0},
                            "description": "Bucket label (local start, `yyyy-MM-dd HH:mm:ss.S`) to value, ascending, every bucket present."},
                },
            })),
        ),
        ("ClientInfo", info(json!({}))),
        (
            "CreatedClient",
            info(json!({
                "client_id": {"type": "string", "description": "The same as `id`."},
                "client_secret": {"type": "string", "description": "Shown only in this answer."},
            })),
        ),
        (
            "TokenInfo",
            info(json!({"expires_at": nullable_time.clone()})),
        ),
        (
            "CreatedToken",
            info(json!({
                "expires_at": nullable_time,
                "token": {"type": "string", "description": "The personal access token, shown only in this answer."},
            })),
        ),
        (
            "AccessToken",
            schema(json!({
                "type": "object",
                "required": ["access_token", "token_type", "expires_in", "scope"],
                "properties": {
                    "access_token": {"type": "string"},
                    "token_type": {"type": "string", "enum": ["Bearer"]},
                    "expires_in": {"type": "integer", "minimum": 0, "description": "Seconds until the token expires."},
                    "scope": {"type": "string", "description": "The granted scopes, space separated."},
                },
            })),
        ),
        (
            "Catalog",
            schema(json!({
                "type": "object",
                "required": ["endpoints", "groups", "now"],
                "properties": {
                    "endpoints": {"type": "array", "items": {
                        "type": "object",
                        "required": ["path", "realtime", "deprecated", "metrics", "dimensions", "downsampling"],
                        "properties": {
                            "path": {"type": "string"},
                            "realtime": {"type": "boolean"},
                            "deprecated": {"type": "boolean"},
                            "metrics": strings.clone(),
                            "dimensions": strings.clone(),
                            "downsampling": strings.clone(),
                        },
                    }},
                    "groups": {"type": "array", "items": {"type": "string"},
                               "description": "Groups this token may read that hold data."},
                    "now": {"type": "string", "format": "date-time", "description": "The server's clock."},
                },
            })),
        ),
        (
            "CatalogValues",
            schema(json!({
                "type": "object",
                "description": "Each dimension of the endpoint to its distinct values, sorted.",
                "additionalProperties": strings,
            })),
        ),
        (
            "Status",
            schema(json!({
                "type": "object", "required": ["status"],
                "properties": {"status": {"type": "string", "enum": ["ok", "ready"]}},
            })),
        ),
        (
            "NotReady",
            schema(json!({
                "type": "object", "required": ["message"],
                "properties": {
                    "message": {"type": "string"},
                    "status": {"type": "string", "enum": ["recovering"]},
                    "elapsed_ms": {"type": "integer", "minimum": 0},
                },
            })),
        ),
    ]
}

/// `yyyy/MM/dd HH:mm:ss` with an optional fraction of 1 to 3 digits.
const LOCAL_TIME_PATTERN: &str =
    r"^[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,3})?$";

/// A group name: no control characters (its length is bounded in bytes, 1 to 256). `*` alone is
/// refused too; the pattern does not say so, to stay within regex dialects without lookahead.
const GROUP_PATTERN: &str = r"^[^\u0000-\u001f\u007f]+$";

fn query_schema_name(endpoint: Endpoint) -> String {
    let path = endpoint.path().trim_start_matches("/metrics-api/");
    format!("Query_{}", path.replace("/metrics/", "_").replace('/', "_"))
}

/// The body of one query endpoint: its own metrics, filters and downsamplings.
fn query_body_schema(endpoint: Endpoint) -> Schema {
    let filters: serde_json::Map<String, Value> = endpoint
        .family()
        .dims()
        .iter()
        .map(|&dim| {
            let filter = if dim == "test_flag" {
                json!({"type": "boolean"})
            } else {
                json!({"type": "array", "items": {"type": "string"}, "maxItems": 1000})
            };
            (dim.to_string(), filter)
        })
        .collect();
    let metrics: Vec<&str> = endpoint.metrics().iter().map(|m| m.name).collect();
    let downsampling: Vec<&str> = endpoint.granularities().iter().map(|g| g.name()).collect();
    let local_time = |example: &str| {
        json!({"type": "string", "pattern": LOCAL_TIME_PATTERN, "examples": [example],
               "description": "Local wall-clock time in `timezone`, `yyyy/MM/dd HH:mm:ss[.SSS]`."})
    };
    schema(json!({
        "type": "object",
        "required": ["metrics", "start", "end", "group"],
        "properties": {
            "metrics": {"type": "array", "items": {"type": "string", "enum": metrics},
                        "minItems": 1, "maxItems": 64,
                        "description": "Series come in this order."},
            "filters": {"type": "object", "properties": filters, "additionalProperties": false,
                        "description": "Dimension to the values to keep; an empty array keeps every value (useful with drilldown)."},
            "start": local_time("2026/11/25 10:00:00"),
            "end": local_time("2026/11/25 10:10:00"),
            "group": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": GROUP_PATTERN,
                      "examples": ["ocp-qa"]},
            "downsampling": {"type": "string", "enum": downsampling, "default": downsampling[0]},
            "drilldown": {"type": "boolean", "default": false,
                          "description": "One series per metric (false) or per combination of filter values with data (true)."},
            "timezone": {"type": "string", "default": "UTC", "examples": ["Europe/Athens"],
                         "description": "An IANA time zone name."},
        },
    }))
}

/// Every operation: path (as the router names it, `{*x}` written `{x}`), method, operation.
fn operations() -> Vec<(String, HttpMethod, Operation)> {
    let mut ops = vec![
        (
            "/healthz",
            HttpMethod::Get,
            op("health", "operator", "Liveness: 200 as soon as the process listens.")
                .response("200", json_answer("Alive.", "Status", json!({"status": "ok"})))
                .build(),
        ),
        (
            "/readyz",
            HttpMethod::Get,
            op(
                "ready",
                "operator",
                "Readiness: 200 once the store is recovered and ingest and queries are served.",
            )
            .response("200", json_answer("Ready.", "Status", json!({"status": "ready"})))
            .response(
                "503",
                with_retry_after(json_answer(
                    "Still recovering (with `status` and `elapsed_ms`), or recovery failed.",
                    "NotReady",
                    json!({"status": "recovering", "message": "the server is recovering its store; it answers 200 here once ingest and queries are served", "elapsed_ms": 412}),
                )),
            )
            .build(),
        ),
        (
            "/metrics",
            HttpMethod::Get,
            op(
                "metrics",
                "operator",
                "The server's own counters in the Prometheus text format (no group names, no tenant values).",
            )
            .response(
                "200",
                ResponseBuilder::new()
                    .description("Prometheus text exposition format 0.0.4.")
                    .content(
                        "text/plain; version=0.0.4; charset=utf-8",
                        ContentBuilder::new()
                            .schema(Some(String::schema()))
                            .build(),
                    )
                    .build(),
            )
            .response("401", error_response(401))
            .build(),
        ),
        (
            "/ingest/v1/events",
            HttpMethod::Post,
            ingest_operation(),
        ),
        ("/oauth2/token", HttpMethod::Post, token_operation()),
        (
            "/admin/v1/clients",
            HttpMethod::Post,
            admin_op("create_client", "Create an API client; the secret is shown only in this answer.")
                .request_body(Some(json_body(
                    "NewClient",
                    json!({"name": "bi-tool", "groups": ["ocp-qa"], "scopes": ["metrics:read", "events:write"]}),
                )))
                .response(
                    "201",
                    json_answer(
                        "Created.",
                        "CreatedClient",
                        json!({"client_id": "ocpm_client_6d99...", "client_secret": "Mhxy...", "id": "ocpm_client_6d99...", "name": "bi-tool", "groups": ["ocp-qa"], "scopes": ["metrics:read", "events:write"], "created_at": "2026-11-25T12:00:04.357314541Z"}),
                    ),
                )
                .response("400", error_response(400))
                .response("413", error_response(413))
                .build(),
        ),
        (
            "/admin/v1/clients",
            HttpMethod::Get,
            admin_op("list_clients", "Every API client, oldest first, without secrets.")
                .response(
                    "200",
                    json_answer_array(
                        "The clients.",
                        "ClientInfo",
                        Some(json!([{"id": "ocpm_client_6d99...", "name": "bi-tool", "groups": ["ocp-qa"], "scopes": ["metrics:read", "events:write"], "created_at": "2026-11-25T12:00:04.357314541Z"}])),
                    ),
                )
                .build(),
        ),
        (
            "/admin/v1/clients/{id}",
            HttpMethod::Delete,
            admin_op("delete_client", "Delete an API client; its access tokens stop working at once.")
                .parameter(id_parameter("The client's id."))
                .response("204", ResponseBuilder::new().description("Deleted.").build())
                .build(),
        ),
        (
            "/admin/v1/tokens",
            HttpMethod::Post,
            admin_op("create_token", "Create a personal access token; it is shown only in this answer.")
                .request_body(Some(json_body(
                    "NewToken",
                    json!({"name": "wallboard", "groups": ["ocp-qa"], "scopes": ["metrics:read"], "expires_at": null}),
                )))
                .response(
                    "201",
                    json_answer(
                        "Created.",
                        "CreatedToken",
                        json!({"id": "d142b375...", "token": "ocpm_pat_d142b375..._cB86...", "name": "wallboard", "groups": ["ocp-qa"], "scopes": ["metrics:read"], "created_at": "2026-11-25T12:00:04.384825652Z", "expires_at": null}),
                    ),
                )
                .response("400", error_response(400))
                .response("413", error_response(413))
                .build(),
        ),
        (
            "/admin/v1/tokens",
            HttpMethod::Get,
            admin_op("list_tokens", "Every personal access token, expired ones included, oldest first, without the token itself.")
                .response(
                    "200",
                    json_answer_array(
                        "The tokens.",
                        "TokenInfo",
                        Some(json!([{"id": "d142b375...", "name": "wallboard", "groups": ["ocp-qa"], "scopes": ["metrics:read"], "created_at": "2026-11-25T12:00:04.384825652Z", "expires_at": null}])),
                    ),
                )
                .build(),
        ),
        (
            "/admin/v1/tokens/{id}",
            HttpMethod::Delete,
            admin_op("revoke_token", "Revoke a personal access token at once.")
                .parameter(id_parameter("The token's id."))
                .response("204", ResponseBuilder::new().description("Revoked.").build())
                .build(),
        ),
        (
            "/api/v1/catalog",
            HttpMethod::Get,
            bearer_op(
                "catalog",
                "catalog",
                "The query endpoints with their metrics, dimensions and downsamplings, the groups this token may read that hold data, and the server's clock (scope `metrics:read`).",
            )
            .response(
                "200",
                json_answer(
                    "The catalog.",
                    "Catalog",
                    json!({"endpoints": [{"path": "/metrics-api/v3/realtime/metrics/dialogs", "realtime": true, "deprecated": false, "metrics": ["dialogs_completed", "dialogs_transferred", "dialogs_terminated", "root_system_errors", "root_agent_requests", "root_critical_error", "root_no_inputs", "root_no_matches"], "dimensions": ["flow_name", "locale", "channel", "test_flag", "region"], "downsampling": ["five_min", "hour"]}], "groups": ["ocp-qa"], "now": "2026-11-25T12:00:48.094301615Z"}),
                ),
            )
            .build(),
        ),
        (
            "/api/v1/catalog/values",
            HttpMethod::Get,
            bearer_op(
                "catalog_values",
                "catalog",
                "For one group and one query endpoint, the distinct values of each of its dimensions (scope `metrics:read`).",
            )
            .parameter(
                ParameterBuilder::new()
                    .name("group")
                    .parameter_in(ParameterIn::Query)
                    .required(Required::True)
                    .schema(Some(String::schema()))
                    .example(Some(json!("ocp-qa")))
                    .build(),
            )
            .parameter(
                ParameterBuilder::new()
                    .name("path")
                    .parameter_in(ParameterIn::Query)
                    .required(Required::True)
                    .schema(Some(schema(json!({"type": "string", "enum": Endpoint::ALL.iter().map(|e| e.path()).collect::<Vec<_>>()}))))
                    .build(),
            )
            .response(
                "200",
                json_answer(
                    "The values.",
                    "CatalogValues",
                    json!({"channel": ["omIVR"], "locale": ["en-US"], "miniapp_name": ["Balance", "Identify", "Transfer"], "miniapp_type": ["AccountNumber", "Announcement", "YesNo"], "region": ["us1"], "test_flag": ["false"]}),
                ),
            )
            .response("400", error_response(400))
            .build(),
        ),
        ("/api/v1/live", HttpMethod::Get, live_operation()),
        (
            "/",
            HttpMethod::Get,
            web_op("reporting_page", "The Reporting web page.", "text/html; charset=utf-8"),
        ),
        (
            "/assets/{path}",
            HttpMethod::Get,
            web_file_op(
                "reporting_asset",
                "A file of the Reporting page.",
                "path",
                json!({"type": "string", "examples": ["main.js", "vendor/uPlot.iife.min.js"]}),
            ),
        ),
        (
            "/openapi.json",
            HttpMethod::Get,
            op("openapi", "web", "This document (OpenAPI 3.1).")
                .response(
                    "200",
                    ResponseBuilder::new()
                        .description("The document.")
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(schema(json!({"type": "object"}))))
                                .build(),
                        )
                        .build(),
                )
                .response("503", error_response(503))
                .build(),
        ),
        (
            "/docs",
            HttpMethod::Get,
            web_op(
                "docs_page",
                "This reference as an interactive page (Swagger UI, served by this server).",
                "text/html; charset=utf-8",
            ),
        ),
        (
            "/docs/{file}",
            HttpMethod::Get,
            web_file_op(
                "docs_file",
                "A file of the reference page.",
                "file",
                json!({"type": "string", "enum": DOCS_FILES.iter().map(|(name, _, _)| *name).collect::<Vec<_>>()}),
            ),
        ),
    ]
    .into_iter()
    .map(|(path, method, operation)| (path.to_string(), method, operation))
    .collect::<Vec<_>>();
    ops.extend(
        Endpoint::ALL
            .into_iter()
            .map(|e| (e.path().to_string(), HttpMethod::Post, query_operation(e))),
    );
    ops
}

/// `GET /api/v1/live`: one real-time query over a rolling window as server-sent events.
fn live_operation() -> Operation {
    let parameter = |name: &str, required: bool, schema_value: Value, description: &str| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Query)
            .required(if required {
                Required::True
            } else {
                Required::False
            })
            .description(Some(description))
            .schema(Some(schema(schema_value)))
            .build()
    };
    bearer_op(
        "live",
        "query",
        "Live updates of a real-time query over a rolling window, as server-sent events: a `snapshot` of the whole window, then at most once a second an `update` with only the five-minute buckets that changed (scope `metrics:read`; see docs/api.md section 5.6).",
    )
    .parameter(parameter("group", true, json!({"type": "string", "pattern": GROUP_PATTERN}), "The group to follow."))
    .parameter(parameter("family", true, json!({"type": "string", "enum": ["dialogs", "sessions", "miniapps"]}), "The real-time family."))
    .parameter(parameter("metrics", false, json!({"type": "string"}), "Comma-separated metric names of the family; default: all of them."))
    .parameter(parameter("filters", false, json!({"type": "string"}), "The query body's `filters` object, as JSON."))
    .parameter(parameter("drilldown", false, json!({"type": "string"}), "A dimension to split the series by."))
    .parameter(parameter("downsampling", false, json!({"type": "string", "enum": ["five_min", "hour"]}), "Bucket width; default five_min."))
    .parameter(parameter("timezone", false, json!({"type": "string"}), "IANA time zone of the labels; default UTC."))
    .parameter(parameter("window_minutes", false, json!({"type": "integer", "minimum": 5, "maximum": 2880}), "The rolling window; default 60."))
    .response(
        "200",
        ResponseBuilder::new()
            .description("The event stream: `snapshot`, `update` and `error` events, and a heartbeat comment after 15 s of silence.")
.content(
                "text/event-stream",
                ContentBuilder::new()
                    .schema(Some(schema(json!({
                        "description": "Each server-sent event: its name and its data, a JSON text (a `snapshot` or `update` with `from` and `series`, or an `error` with `message`).",
                        "type": "object",
                        "required": ["data"],
                        "properties": {
                            "event": {"type": "string", "enum": ["snapshot", "update", "error"]},
                            "data": {"type": "string"},
                            "id": {"type": "string"},
                            "retry": {"type": "integer"}
                        }
                    }))))
                    .build(),
            )
            .build(),
    )
    .response("400", error_response(400))
    .build()
}

fn op(id: &str, tag: &str, summary: &str) -> OperationBuilder {
    OperationBuilder::new()
        .operation_id(Some(id))
        .tag(tag)
        .summary(Some(summary))
}

/// An operation with a bearer token: 401, 403, 429 and 503 besides its own answers.
fn bearer_op(id: &str, tag: &str, summary: &str) -> OperationBuilder {
    op(id, tag, summary)
        .security(SecurityRequirement::new(BEARER, Vec::<String>::new()))
        .response("401", error_response(401))
        .response("403", error_response(403))
        .response("429", error_response(429))
        .response("500", error_response(500))
        .response("503", error_response(503))
}

/// An admin operation: 401 (wrong admin token), 404 (admin API disabled, or an unknown id),
/// 429 (too many failed admin authentications) and 503.
fn admin_op(id: &str, summary: &str) -> OperationBuilder {
    op(id, "admin", summary)
        .security(SecurityRequirement::new(ADMIN, Vec::<String>::new()))
        .response("401", error_response(401))
        .response("404", error_response(404))
        .response("429", error_response(429))
        .response("500", error_response(500))
        .response("503", error_response(503))
}

fn web_op(id: &str, summary: &str, content_type: &str) -> Operation {
    op(id, "web", summary)
        .response(
            "200",
            ResponseBuilder::new()
                .description("The page.")
                .content(
                    content_type,
                    ContentBuilder::new().schema(Some(String::schema())).build(),
                )
                .build(),
        )
        .response("503", error_response(503))
        .build()
}

fn web_file_op(id: &str, summary: &str, parameter: &str, parameter_schema: Value) -> Operation {
    op(id, "web", summary)
        .parameter(
            ParameterBuilder::new()
                .name(parameter)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(schema(parameter_schema)))
                .build(),
        )
        .response(
            "200",
            ResponseBuilder::new()
                .description("The file (JavaScript, CSS or text).")
                .content(
                    "text/javascript; charset=utf-8",
                    ContentBuilder::new().schema(Some(String::schema())).build(),
                )
                .content(
                    "text/css; charset=utf-8",
                    ContentBuilder::new().schema(Some(String::schema())).build(),
                )
                .content(
                    "text/plain; charset=utf-8",
                    ContentBuilder::new().schema(Some(String::schema())).build(),
                )
                .build(),
        )
        .response("404", error_response(404))
        .response("503", error_response(503))
        .build()
}

fn id_parameter(description: &str) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(String::schema()))
        .build()
}

fn json_body(schema_name: &str, example: Value) -> utoipa::openapi::request_body::RequestBody {
    RequestBodyBuilder::new()
        .required(Some(Required::True))
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(reference(schema_name)))
                .example(Some(example))
                .build(),
        )
        .build()
}

fn json_answer(description: &str, schema_name: &str, example: Value) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(reference(schema_name)))
                .example(Some(example))
                .build(),
        )
        .build()
}

fn json_answer_array(
    description: &str,
    schema_name: &str,
    example: Option<Value>,
) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(schema(json!({
                    "type": "array",
                    "items": {"$ref": format!("#/components/schemas/{schema_name}")},
                }))))
                .example(example)
                .build(),
        )
        .build()
}

fn with_retry_after(mut response: utoipa::openapi::Response) -> utoipa::openapi::Response {
    response.headers.insert(
        "Retry-After".into(),
        Header::builder()
            .schema(schema(json!({"type": "integer", "minimum": 1})))
            .description(Some("Seconds to wait before retrying."))
            .build(),
    );
    response
}

/// An error answer, `{"message"}`, with what the status means and a real message.
fn error_response(status: u16) -> utoipa::openapi::Response {
    error_response_saying(status, None)
}

/// An error answer whose example message is `message` when given (an operation's own words).
fn error_response_saying(status: u16, message: Option<String>) -> utoipa::openapi::Response {
    let (description, example) = match status {
        400 => (
            "The request is malformed or invalid; the message names the field.",
            "filter `flow_name` is not supported by /metrics-api/v3/realtime/metrics/sessions; supported filters: channel, test_flag, region",
        ),
        401 => (
            "Missing or unacceptable credentials (with `WWW-Authenticate`).",
            "missing credentials: send the header `Authorization: Bearer <token>` with an access token from /oauth2/token or a personal access token",
        ),
        403 => (
            "A valid token without the needed scope, or used for a group it was not granted.",
            "this token is not granted the group \"globex\": use a client or token granted that group",
        ),
        404 => (
            "No such resource (for the admin API: it is disabled, or the id is unknown).",
            "no client with id `ocpm_client_6d99...`; list them with GET /admin/v1/clients",
        ),
        413 => (
            "The body is over its limit.",
            "the request body is over 33554432 bytes; send fewer events per request",
        ),
        415 => (
            "A Content-Type or Content-Encoding the server does not read.",
            "Content-Type `text/plain` is not supported; send application/x-ndjson (one event per line) or application/json (an array of events)",
        ),
        429 => (
            "Too many requests (with `Retry-After`).",
            "too many requests for this token; retry after 1 s or lower the request rate",
        ),
        500 => (
            "Something unexpected; the details are in the server's log.",
            "internal error: the server could not answer this request; retry, and report it if it persists",
        ),
        _ => (
            "Not ready (the store is recovering), overloaded, or the event log cannot be written (with `Retry-After`).",
            "recovering: the server is loading its checkpoint and replaying its event log; retry in a few seconds (GET /readyz answers 200 once it is ready)",
        ),
    };
    let example = message.unwrap_or_else(|| example.to_string());
    let response = json_answer(description, "ErrorAnswer", json!({"message": example}));
    match status {
        401 => {
            let mut response = response;
            response.headers.insert(
                "WWW-Authenticate".into(),
                Header::builder()
                    .schema(String::schema())
                    .description(Some("`Bearer realm=\"ocp-metrics\"`"))
                    .build(),
            );
            response
        }
        429 | 503 => with_retry_after(response),
        _ => response,
    }
}

fn ingest_operation() -> Operation {
    let ndjson_example = "{\"id\":\"s1-start\",\"type\":\"session_start\",\"time\":\"2026-11-25T10:01:00Z\",\"group\":\"ocp-qa\",\"session_id\":\"s1\",\"channel\":\"omIVR\",\"region\":\"us1\"}\n{\"id\":\"s1-end\",\"type\":\"session_end\",\"time\":\"2026-11-25T10:08:00Z\",\"started_at\":\"2026-11-25T10:01:00Z\",\"group\":\"ocp-qa\",\"session_id\":\"s1\",\"channel\":\"omIVR\",\"region\":\"us1\"}\n";
    bearer_op(
        "ingest_events",
        "ingest",
        "Send a batch of events (scope `events:write`). A 200 means every accepted event is durable and visible to queries; a 5xx means nothing was accepted and the request can be resent as is.",
    )
    .description(Some(
        "NDJSON (one event per line) or a JSON array of events, optionally with \
         `Content-Encoding: gzip`. Each event is validated on its own: invalid ones are listed \
         in `errors` and the rest are accepted. Limits: 32 MiB as sent, 256 MiB decompressed, \
         200,000 events.",
    ))
    .request_body(Some(
        RequestBodyBuilder::new()
            .required(Some(Required::True))
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(schema(json!({
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Event"},
                        "maxItems": 200000,
                    }))))
                    .example(Some(json!([
                        {"id": "s1-start", "type": "session_start", "time": "2026-11-25T10:01:00Z", "group": "ocp-qa", "session_id": "s1", "channel": "omIVR", "region": "us1"},
                        {"id": "s1-d1", "type": "dialog_end", "time": "2026-11-25T10:08:00Z", "started_at": "2026-11-25T10:01:00Z", "group": "ocp-qa", "session_id": "s1", "channel": "omIVR", "region": "us1", "flow_name": "Banking", "flow_id": "fl-1", "locale": "en-US", "outcome": "transferred", "agent_requests": 1, "no_inputs": 1},
                    ])))
                    .build(),
            )
            .content(
                "application/x-ndjson",
                ContentBuilder::new()
                    .schema(Some(schema(json!({
                        "type": "string",
                        "description": "One event object (schema Event) per line.",
                    }))))
                    .example(Some(json!(ndjson_example)))
                    .build(),
            )
            .build(),
    ))
    .response(
        "200",
        json_answer(
            "The request was read; each event was accepted, a duplicate, or rejected.",
            "IngestAnswer",
            json!({"accepted": 0, "duplicates": 0, "rejected": 2, "errors": [
                {"index": 0, "message": "`started_at`: is after `time`; an end event must start no later than it ends"},
                {"index": 1, "message": "`channel`: must be a string, got a number"},
            ]}),
        ),
    )
    .response("400", error_response(400))
    .response("413", error_response(413))
    .response("415", error_response(415))
    .build()
}

fn token_operation() -> Operation {
    let oauth_error = |description: &str, example: Value| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(reference(OAuthErrorAnswer::name().as_ref())))
                    .example(Some(example))
                    .build(),
            )
            .build()
    };
    let mut operation = op(
        "token",
        "auth",
        "OAuth 2.0 client credentials (RFC 6749 section 4.4): trade an API client's id and secret for an access token.",
    )
    .request_body(Some(
        RequestBodyBuilder::new()
            .required(Some(Required::True))
            .content(
                "application/x-www-form-urlencoded",
                ContentBuilder::new()
                    .schema(Some(schema(json!({
                        "type": "object",
                        "required": ["grant_type"],
                        "properties": {
                            "grant_type": {"type": "string", "enum": ["client_credentials"]},
                            "client_id": {"type": "string", "description": "Unless HTTP Basic is used."},
                            "client_secret": {"type": "string", "description": "Unless HTTP Basic is used."},
                            "scope": {"type": "string", "description": "Space-separated scopes, a subset of the client's."},
                        },
                    }))))
                    .example(Some(json!({"grant_type": "client_credentials", "client_id": "ocpm_client_6d99...", "client_secret": "Mhxy...", "scope": "metrics:read"})))
                    .build(),
            )
            .build(),
    ))
    .response(
        "200",
        json_answer(
            "An access token (with `Cache-Control: no-store`).",
            "AccessToken",
            json!({"access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...", "token_type": "Bearer", "expires_in": 3600, "scope": "metrics:read"}),
        ),
    )
    .response(
        "400",
        oauth_error(
            "invalid_request, unsupported_grant_type, invalid_scope, or invalid_client when the client used the form fields.",
            json!({"error": "unsupported_grant_type", "error_description": "grant_type \"password\" is not supported: only client_credentials is", "message": "grant_type \"password\" is not supported: only client_credentials is"}),
        ),
    )
    .response(
        "401",
        oauth_error(
            "invalid_client with HTTP Basic (with `WWW-Authenticate: Basic`).",
            json!({"error": "invalid_client", "error_description": "unknown client or wrong secret", "message": "unknown client or wrong secret"}),
        ),
    )
    .response("413", error_response(413))
    .response("429", error_response(429))
    .response("500", error_response(500))
    .response("503", error_response(503))
    .build();
    // Either HTTP Basic or no HTTP authentication at all (the form fields).
    operation.security = Some(vec![
        SecurityRequirement::new(CLIENT_BASIC, Vec::<String>::new()),
        SecurityRequirement::default(),
    ]);
    operation
}

fn query_operation(endpoint: Endpoint) -> Operation {
    let family = endpoint.family();
    let path = endpoint.path();
    let version = if path.contains("/v2/") { "v2" } else { "v3" };
    let (kind, buckets) = if family.is_realtime() {
        (
            "Real-time",
            "five-minute buckets (or hours), the last 48 hours",
        )
    } else {
        ("Batch", "buckets of an hour to a year, 720 days")
    };
    let subject = match path.rsplit('/').next() {
        Some("miniapps") => "miniApps",
        Some(other) => other,
        None => path,
    };
    let deprecated = if endpoint.is_deprecated() {
        " (deprecated)"
    } else {
        ""
    };
    let id = query_schema_name(endpoint).replacen("Query_", "query_", 1);
    let (request_example, answer_example) = query_examples(endpoint);
    let mut operation = bearer_op(
        &id,
        "query",
        &format!("{kind} {subject}, {version}{deprecated}"),
    )
    .description(Some(format!(
        "Scope `metrics:read`; {buckets}.\n\nMetrics: {}.\n\nFilters: {}.{}",
        endpoint
            .metrics()
            .iter()
            .map(|m| format!("`{}`", m.name))
            .collect::<Vec<_>>()
            .join(", "),
        family
            .dims()
            .iter()
            .map(|d| format!("`{d}`"))
            .collect::<Vec<_>>()
            .join(", "),
        if endpoint.is_deprecated() {
            "\n\nSuccessful answers carry `Deprecation`, `Sunset` and a `Link` to the v3 successor."
        } else {
            ""
        }
    )))
    .request_body(Some(json_body(
        &query_schema_name(endpoint),
        request_example,
    )))
    .response("200", {
        let mut answer = json_answer_array(
            "One series per requested metric (or per combination of filter values with drilldown).",
            "Series",
            answer_example,
        );
        if endpoint.is_deprecated() {
            for name in ["Deprecation", "Sunset", "Link"] {
                answer.headers.insert(
                    name.into(),
                    Header::builder().schema(String::schema()).build(),
                );
            }
        }
        answer.headers.insert(
            "X-Stale-Data-As-Of".into(),
            Header::builder()
                .schema(String::schema())
                .description(Some(
                    "Only on an answer that may be incomplete: a cluster node cut off from the event stream answers from what it has, and this is the time (RFC 3339) up to which its data is known to be complete. Absent on a current answer.",
                ))
                .build(),
        );
        answer
    })
    .response("400", error_response(400))
    .response(
        "413",
        error_response_saying(
            413,
            Some(format!(
                "the query body is over {} bytes; send fewer filter values",
                crate::query::QUERY_BODY_BYTES_MAX
            )),
        ),
    )
    .build();
    if endpoint.is_deprecated() {
        operation.deprecated = Some(utoipa::openapi::Deprecated::True);
    }
    operation
}

/// A request and its answer for one query endpoint: docs/api.md's real ones where it has them.
fn query_examples(endpoint: Endpoint) -> (Value, Option<Value>) {
    match endpoint {
        Endpoint::V3RtDialogs => (
            json!({"metrics": ["dialogs_completed", "dialogs_transferred", "root_agent_requests"],
                   "filters": {"flow_name": ["Banking"]},
                   "start": "2026/11/25 10:00:00", "end": "2026/11/25 10:10:00", "group": "ocp-qa"}),
            Some(json!([
                {"metric": "dialogs_completed", "tags": {"group": "ocp-qa", "flow_name": "Banking"}, "dps": {"2026-11-25 10:00:00.0": 1, "2026-11-25 10:05:00.0": 0}},
                {"metric": "dialogs_transferred", "tags": {"group": "ocp-qa", "flow_name": "Banking"}, "dps": {"2026-11-25 10:00:00.0": 1, "2026-11-25 10:05:00.0": 0}},
                {"metric": "root_agent_requests", "tags": {"group": "ocp-qa", "flow_name": "Banking"}, "dps": {"2026-11-25 10:00:00.0": 1, "2026-11-25 10:05:00.0": 0}},
            ])),
        ),
        Endpoint::V3BatchMiniapps => (
            json!({"metrics": ["totalinvocations", "hangeduptasks"],
                   "filters": {"miniapp_name": []}, "drilldown": true,
                   "start": "2026/11/25 00:00:00", "end": "2026/11/26 00:00:00",
                   "group": "ocp-qa", "downsampling": "day", "timezone": "Asia/Kathmandu"}),
            Some(json!([
                {"metric": "totalinvocations", "tags": {"group": "ocp-qa", "miniapp_name": "Balance"}, "dps": {"2026-11-25 00:00:00.0": 1}},
                {"metric": "totalinvocations", "tags": {"group": "ocp-qa", "miniapp_name": "Identify"}, "dps": {"2026-11-25 00:00:00.0": 1}},
                {"metric": "totalinvocations", "tags": {"group": "ocp-qa", "miniapp_name": "Transfer"}, "dps": {"2026-11-25 00:00:00.0": 1}},
                {"metric": "hangeduptasks", "tags": {"group": "ocp-qa", "miniapp_name": "Balance"}, "dps": {"2026-11-25 00:00:00.0": 0}},
                {"metric": "hangeduptasks", "tags": {"group": "ocp-qa", "miniapp_name": "Identify"}, "dps": {"2026-11-25 00:00:00.0": 0}},
                {"metric": "hangeduptasks", "tags": {"group": "ocp-qa", "miniapp_name": "Transfer"}, "dps": {"2026-11-25 00:00:00.0": 1}},
            ])),
        ),
        // No recorded answer for this endpoint: a request only (the shape is the same).
        other => (
            json!({"metrics": [other.metrics()[0].name], "filters": {},
                   "start": "2026/11/25 10:00:00", "end": "2026/11/25 11:00:00",
                   "group": "ocp-qa", "downsampling": other.granularities()[0].name()}),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{Server, ServerConfig};
    use std::collections::BTreeSet;
    use std::sync::Arc;

    const ADMIN_TOKEN: &str = "an-admin-token-of-at-least-32-characters";

    /// A server on a free port with a fresh data dir, its store recovered.
    struct Running {
        rt: tokio::runtime::Runtime,
        base: String,
        router: String,
        _dir: tempfile::TempDir,
    }

    fn start() -> Running {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let config = ServerConfig {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().to_path_buf(),
            admin_token: Some(
                ocp_metrics_auth::OperatorToken::parse("admin token", ADMIN_TOKEN).unwrap(),
            ),
            metrics_token: None,
            clock: Arc::new(ocp_metrics_core::SystemClock),
            limits: Default::default(),
            registry: crate::open_file_registry(
                dir.path(),
                Default::default(),
                Arc::new(ocp_metrics_core::SystemClock),
            )
            .unwrap()
            .into(),
            backend: crate::BackendOpener(ocp_metrics_store::open_embedded(
                dir.path().to_path_buf(),
                Default::default(),
                Arc::new(ocp_metrics_core::SystemClock),
            )),
            recovery_hold: None,
        };
        let server = rt.block_on(Server::bind(config)).unwrap();
        rt.block_on(server.app().ready()).unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        let router = format!("{:?}", crate::app::router(server.app().clone()));
        rt.spawn(server.run(std::future::pending()));
        Running {
            rt,
            base,
            router,
            _dir: dir,
        }
    }

    /// The routes the router serves, as (method, path) with `{*x}` written `{x}` as OpenAPI
    /// does; HEAD is left out (it comes with GET).
    ///
    /// axum has no API that lists routes, so this reads the router's `Debug` output: each
    /// route id's `allow_header` (its methods) and the path of each route id. Reading the real
    /// router, rather than a table kept beside it, catches a route added anywhere.
    fn served_routes(router_debug: &str) -> BTreeSet<(String, String)> {
        let start = router_debug
            .find("path_router:")
            .expect("the router's Debug output names its path router");
        let end = router_debug
            .find("fallback_router:")
            .expect("the router's Debug output names its fallback router");
        let section = &router_debug[start..end];
        let mut methods = std::collections::HashMap::new();
        let mut paths = std::collections::HashMap::new();
        for chunk in section.split("RouteId(").skip(1) {
            let Some((id, rest)) = chunk.split_once("): ") else {
                continue;
            };
            if let Some(path) = rest.strip_prefix('"') {
                paths.insert(id.to_string(), path[..path.find('"').unwrap()].to_string());
            } else if let Some(at) = rest.find("allow_header: Bytes(b\"") {
                let allowed = &rest[at + "allow_header: Bytes(b\"".len()..];
                let allowed = &allowed[..allowed.find('"').unwrap()];
                methods.insert(id.to_string(), allowed.to_string());
            }
        }
        let mut routes = BTreeSet::new();
        for (id, path) in paths {
            let allowed = methods.get(&id).unwrap_or_else(|| {
                panic!("{path} is served by a service with no method list: document it and teach served_routes its methods")
            });
            let path = path.replace("{*", "{");
            for method in allowed.split(',').filter(|m| *m != "HEAD") {
                routes.insert((method.to_string(), path.clone()));
            }
        }
        routes
    }

    fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
        let mut routes = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
        routes
    }

    fn doc() -> Value {
        serde_json::from_str(document_json()).unwrap()
    }

    #[test]
    fn the_document_describes_every_route_and_no_other() {
        let running = start();
        let served = served_routes(&running.router);
        // The reader of the Debug output works (an axum upgrade that changes it fails here).
        assert!(
            served.contains(&("GET".into(), "/healthz".into())),
            "{served:?}"
        );
        assert!(served.contains(&("DELETE".into(), "/admin/v1/tokens/{id}".into())));
        let documented = documented_routes(&doc());
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let missing: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "routes the OpenAPI document lacks (add them in openapi.rs): {undocumented:?}"
        );
        assert!(
            missing.is_empty(),
            "documented routes the router does not serve: {missing:?}"
        );
    }

    /// Paths answered before and while the store recovers, without the 503 of the gate.
    const UNGATED: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

    #[test]
    fn every_operation_lists_its_error_answers() {
        let doc = doc();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let name = format!("{method} {path}");
                let responses = op["responses"].as_object().unwrap();
                let has = |status: &str| responses.contains_key(status);
                let security: Vec<&str> = op["security"]
                    .as_array()
                    .map(|s| {
                        s.iter()
                            .flat_map(|r| r.as_object().unwrap().keys())
                            .map(String::as_str)
                            .collect()
                    })
                    .unwrap_or_default();
                if !UNGATED.contains(&path.as_str()) {
                    assert!(has("503"), "{name}: 503 (recovering)");
                }
                if security.contains(&BEARER) {
                    for status in ["401", "403", "429", "500"] {
                        assert!(has(status), "{name}: {status}");
                    }
                }
                if security.contains(&ADMIN) {
                    for status in ["401", "404", "429", "500"] {
                        assert!(has(status), "{name}: {status}");
                    }
                }
                if op.get("requestBody").is_some() {
                    assert!(has("400") && has("413"), "{name}: 400 and 413");
                }
                for (status, response) in responses {
                    if status.as_str() < "400" {
                        continue;
                    }
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    // `/readyz`'s 503 adds `status` and `elapsed_ms` to the message.
                    assert!(
                        schema == "#/components/schemas/ErrorAnswer"
                            || schema == "#/components/schemas/OAuthErrorAnswer"
                            || (path == "/readyz" && schema == "#/components/schemas/NotReady"),
                        "{name} {status}: an error answer is {{\"message\"}}, got {schema}"
                    );
                }
            }
        }
    }

    #[test]
    fn query_bodies_offer_exactly_each_endpoints_metrics_filters_and_downsamplings() {
        let doc = doc();
        let names = |v: &Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_str().unwrap().to_string())
                .collect()
        };
        for endpoint in Endpoint::ALL {
            let schema_ref =
                doc["paths"][endpoint.path()]["post"]["requestBody"]["content"]["application/json"]
                    ["schema"]["$ref"]
                    .as_str()
                    .unwrap();
            let name = schema_ref.rsplit('/').next().unwrap();
            let properties = &doc["components"]["schemas"][name]["properties"];
            let metrics: Vec<_> = endpoint.metrics().iter().map(|m| m.name).collect();
            assert_eq!(names(&properties["metrics"]["items"]["enum"]), metrics);
            let filters: Vec<_> = properties["filters"]["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            let mut dims: Vec<_> = endpoint.family().dims().to_vec();
            dims.sort_unstable();
            assert_eq!(filters, dims, "{}", endpoint.path());
            let downsampling: Vec<_> = endpoint.granularities().iter().map(|g| g.name()).collect();
            assert_eq!(names(&properties["downsampling"]["enum"]), downsampling);
        }
    }

    /// Checks `value` against `schema` for what drifts: object keys (every required key there,
    /// no key the schema does not list when it lists properties), and JSON types.
    fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) {
        if let Some(reference) = schema["$ref"].as_str() {
            let name = reference.rsplit('/').next().unwrap();
            return conforms(doc, &doc["components"]["schemas"][name], value, at);
        }
        let types: Vec<&str> = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
            _ => vec![],
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_f64() => "number",
            Value::Number(_) => "integer",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        assert!(
            types.is_empty() || types.contains(&actual),
            "{at}: {actual}, the schema says {types:?}"
        );
        match value {
            Value::Object(fields) => {
                for required in schema["required"].as_array().into_iter().flatten() {
                    let key = required.as_str().unwrap();
                    assert!(fields.contains_key(key), "{at}: `{key}` is missing");
                }
                for (key, field) in fields {
                    let at = format!("{at}.{key}");
                    match (&schema["properties"][key], &schema["additionalProperties"]) {
                        (Value::Object(_), _) => {
                            conforms(doc, &schema["properties"][key], field, &at)
                        }
                        (_, Value::Object(_)) => {
                            conforms(doc, &schema["additionalProperties"], field, &at)
                        }
                        _ => assert!(
                            schema.get("properties").is_none(),
                            "{at}: not in the schema"
                        ),
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    conforms(doc, &schema["items"], item, &format!("{at}[{i}]"));
                }
            }
            _ => {}
        }
    }

    /// Sends a request and returns the status and the JSON answer.
    fn call(request: ureq::Request, body: Option<&str>) -> (u16, Value) {
        let result = match body {
            Some(body) => request.send_string(body),
            None => request.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        };
        let status = response.status();
        let text = response.into_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Real answers of every JSON-answering operation conform to the document's schemas, so the
    /// schemas that describe ad-hoc JSON (catalog, admin answers, access tokens) cannot drift.
    #[test]
    fn real_answers_conform_to_the_document() {
        let running = start();
        let doc = doc();
        let base = &running.base;
        let check = |method: &str, path: &str, status: u16, answer: &Value| {
            let operation = &doc["paths"][path][method.to_lowercase()];
            let schema = &operation["responses"][status.to_string()]["content"]["application/json"]
                ["schema"];
            assert!(
                schema.is_object(),
                "{method} {path}: status {status} is not documented"
            );
            conforms(&doc, schema, answer, &format!("{method} {path} {status}"));
        };
        let admin = |r: ureq::Request| {
            r.set("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
                .set("Content-Type", "application/json")
        };
        let (status, client) = call(
            admin(ureq::post(&format!("{base}/admin/v1/clients"))),
            Some(
                r#"{"name": "bi", "groups": ["ocp-qa"], "scopes": ["metrics:read", "events:write"]}"#,
            ),
        );
        check("POST", "/admin/v1/clients", status, &client);
        let (status, token) = call(
            admin(ureq::post(&format!("{base}/admin/v1/tokens"))),
            Some(
                r#"{"name": "wallboard", "groups": ["*"], "scopes": ["metrics:read", "events:write"], "expires_at": "2099-01-01T00:00:00Z"}"#,
            ),
        );
        check("POST", "/admin/v1/tokens", status, &token);
        for path in ["/admin/v1/clients", "/admin/v1/tokens"] {
            let (status, answer) = call(admin(ureq::get(&format!("{base}{path}"))), None);
            assert_eq!(answer.as_array().map(Vec::len), Some(1), "{path}");
            check("GET", path, status, &answer);
        }
        let (status, access) = call(
            ureq::post(&format!("{base}/oauth2/token"))
                .set("Content-Type", "application/x-www-form-urlencoded"),
            Some(&format!(
                "grant_type=client_credentials&client_id={}&client_secret={}",
                client["client_id"].as_str().unwrap(),
                client["client_secret"].as_str().unwrap()
            )),
        );
        check("POST", "/oauth2/token", status, &access);
        let (status, oauth_error) = call(
            ureq::post(&format!("{base}/oauth2/token"))
                .set("Content-Type", "application/x-www-form-urlencoded"),
            Some("grant_type=password"),
        );
        check("POST", "/oauth2/token", status, &oauth_error);

        let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
        let (status, ingested) = call(
            ureq::post(&format!("{base}/ingest/v1/events"))
                .set("Authorization", &bearer)
                .set("Content-Type", "application/json"),
            Some(&format!(
                r#"[{{"id": "a", "type": "session_start", "time": "{}", "group": "ocp-qa", "session_id": "s", "channel": "chat", "region": "us1"}}, {{"id": "b"}}]"#,
                jiff::Timestamp::now()
            )),
        );
        assert_eq!(
            (ingested["accepted"].as_u64(), ingested["rejected"].as_u64()),
            (Some(1), Some(1))
        );
        check("POST", "/ingest/v1/events", status, &ingested);
        let (status, catalog) = call(
            ureq::get(&format!("{base}/api/v1/catalog")).set("Authorization", &bearer),
            None,
        );
        check("GET", "/api/v1/catalog", status, &catalog);
        let (status, values) = call(
            ureq::get(&format!(
                "{base}/api/v1/catalog/values?group=ocp-qa&path={}",
                Endpoint::V3RtSessions.path()
            ))
            .set("Authorization", &bearer),
            None,
        );
        assert_eq!(values["channel"], json!(["chat"]));
        check("GET", "/api/v1/catalog/values", status, &values);
        let now = jiff::Timestamp::now();
        let local = |t: jiff::Timestamp| t.strftime("%Y/%m/%d %H:%M:%S").to_string();
        let (status, series) = call(
            ureq::post(&format!("{base}{}", Endpoint::V3RtSessions.path()))
                .set("Authorization", &bearer),
            Some(
                &json!({"metrics": ["session.initiated"], "group": "ocp-qa", "filters": {"channel": []},
                        "drilldown": true, "start": local(now - jiff::SignedDuration::from_hours(1)),
                        "end": local(now + jiff::SignedDuration::from_mins(5))})
                .to_string(),
            ),
        );
        assert_eq!(series.as_array().map(Vec::len), Some(1), "{series}");
        check("POST", Endpoint::V3RtSessions.path(), status, &series);
        let (status, unauthorized) = call(
            ureq::post(&format!("{base}{}", Endpoint::V3RtSessions.path())),
            Some("{}"),
        );
        check("POST", Endpoint::V3RtSessions.path(), status, &unauthorized);
        for path in ["/healthz", "/readyz"] {
            let (status, answer) = call(ureq::get(&format!("{base}{path}")), None);
            check("GET", path, status, &answer);
        }
        let (status, document) = call(ureq::get(&format!("{base}/openapi.json")), None);
        assert_eq!((status, &document["openapi"]), (200, &json!("3.1.0")));
        drop(running.rt);
    }

    /// The reference page runs under `script-src 'self'`: no inline script, no script or style
    /// from elsewhere, and every file it names is served.
    #[test]
    fn the_docs_page_has_no_inline_script_and_serves_its_files() {
        let running = start();
        let base = &running.base;
        let page = ureq::get(&format!("{base}/docs")).call().unwrap();
        assert_eq!(
            page.header("content-security-policy"),
            Some(DOCS_CONTENT_SECURITY_POLICY)
        );
        assert!(DOCS_CONTENT_SECURITY_POLICY.contains("script-src 'self';"));
        let html = page.into_string().unwrap();
        let scripts: Vec<&str> = html.split("<script").skip(1).collect();
        assert_eq!(scripts.len(), 2, "{html}");
        for script in scripts {
            let (tag, body) = script.split_once('>').unwrap();
            assert!(
                tag.contains(" src=\"/docs/"),
                "a script from elsewhere: {tag}"
            );
            assert!(body.starts_with("</script"), "an inline script: {body}");
        }
        let referenced: Vec<&str> = html
            .split(['"'])
            .filter(|s| s.starts_with("/docs/"))
            .collect();
        assert_eq!(referenced.len(), 3, "{html}");
        for path in referenced {
            let response = ureq::get(&format!("{base}{path}")).call().unwrap();
            assert_eq!(response.status(), 200, "{path}");
        }
        let js = ureq::get(&format!("{base}/docs/docs.js"))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        assert!(js.contains("url: \"/openapi.json\""), "{js}");
        drop(running.rt);
    }
}
