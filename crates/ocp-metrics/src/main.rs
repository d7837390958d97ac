//! The `ocp-metrics` binary: `serve` runs the service; `client` and `token` manage credentials
//! through a running server's admin API; `simulate` drives any server with realistic traffic.

mod admin_cli;
mod demo;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ocp_metrics_auth::{AuthConfig, OperatorToken};
use ocp_metrics_cluster::node::SNAPSHOT_INTERVAL_SECONDS_DEFAULT;
use ocp_metrics_cluster::node::retrying;
use ocp_metrics_cluster::node::snapshots::PURGE_KEEP_MESSAGES_MIN;
use ocp_metrics_cluster::{NatsOptions, NodeConfig, open_cluster_registry, open_node};
use ocp_metrics_core::limits::{
    DIMENSION_VALUES_MAX, RT_SESSIONS_PER_GROUP_MAX, SERIES_PER_GROUP_MAX,
};
use ocp_metrics_core::{Clock, OffsetClock, SystemClock};
use ocp_metrics_server::{
    BODY_READ_TIMEOUT_MS_DEFAULT, BackendOpener, CONNECTIONS_MAX_DEFAULT, Credentials,
    HEADER_READ_TIMEOUT_MS_DEFAULT, Limits, OpenRegistry, RECOVERY_REQUEST_WAIT_MS_DEFAULT, Server,
    ServerConfig, open_file_registry,
};
use ocp_metrics_service::OpenBackend;
use ocp_metrics_store::{EngineConfig, FileLogOptions, StateLimits};
use ocp_metrics_warehouse::{ClickHouseConfig, ClickHouseWarehouse, Warehouse};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(
    name = "ocp-metrics",
    version,
    about = "The OCP Metrics API: real-time and batch metrics of OCP sessions, dialogs and miniApps"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written to stderr: `text` for people, `json` (one object per line,
    /// with a request id, status and latency per request) for log pipelines.
    #[arg(long, global = true, env = "OCP_METRICS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// The format of the log lines on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs to stderr at `RUST_LOG`'s level (default `info`) in the chosen format. Tenant data and
/// secrets are never logged above debug.
fn init_logging(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service on an embedded store.
    Serve(Box<ServeArgs>),
    /// Manage API clients (OAuth 2.0 client credentials) of a running server.
    Client {
        #[command(subcommand)]
        action: admin_cli::ClientAction,
        #[command(flatten)]
        target: admin_cli::Target,
    },
    /// Manage personal access tokens of a running server.
    Token {
        #[command(subcommand)]
        action: admin_cli::TokenAction,
        #[command(flatten)]
        target: admin_cli::Target,
    },
    /// Send realistic simulated OCP traffic to a server.
    Simulate(demo::SimulateArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "OCP_METRICS_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Directory of the embedded store (created if missing).
    #[arg(long, env = "OCP_METRICS_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// File holding the bearer token of the admin API (at least 32 characters; one trailing
    /// newline is ignored). Or set the environment variable OCP_METRICS_ADMIN_TOKEN; never pass
    /// a token as an argument, which other local users can read. Without either the admin API
    /// answers 404.
    #[arg(long, env = "OCP_METRICS_ADMIN_TOKEN_FILE", value_name = "PATH")]
    admin_token_file: Option<PathBuf>,
    /// File holding a bearer token that may scrape /metrics (the admin token may too). Or set
    /// the environment variable OCP_METRICS_METRICS_TOKEN. With neither token set, /metrics
    /// answers 404.
    #[arg(long, env = "OCP_METRICS_METRICS_TOKEN_FILE", value_name = "PATH")]
    metrics_token_file: Option<PathBuf>,
    /// Start the clock at this RFC 3339 instant (it then advances in real time). For demos and
    /// tests that need known bucket labels.
    #[arg(long, env = "OCP_METRICS_CLOCK_START")]
    clock_start: Option<jiff::Timestamp>,
    /// Run with built-in demo traffic: backfill history, then stream live events.
    #[arg(long, env = "OCP_METRICS_DEMO")]
    demo: bool,
    /// Days of history the demo backfills.
    #[arg(long, env = "OCP_METRICS_DEMO_DAYS", default_value_t = 60)]
    demo_days: u32,
    /// Lifetime of access tokens issued by /oauth2/token, in seconds.
    #[arg(long, env = "OCP_METRICS_ACCESS_TOKEN_TTL_SECONDS", default_value_t = AuthConfig::default().access_token_ttl.as_secs())]
    access_token_ttl_seconds: u64,
    /// Requests per second allowed per client or token (token bucket rate).
    #[arg(long, env = "OCP_METRICS_RATE_PER_SECOND", default_value_t = AuthConfig::default().rate_per_second)]
    rate_per_second: f64,
    /// Burst size of the per-client token bucket.
    #[arg(long, env = "OCP_METRICS_RATE_BURST", default_value_t = AuthConfig::default().rate_burst)]
    rate_burst: f64,
    /// Largest ingest body as sent, in bytes.
    #[arg(long, env = "OCP_METRICS_BODY_BYTES_MAX", default_value_t = Limits::default().body_bytes_max)]
    body_bytes_max: usize,
    /// Largest ingest body after gzip decompression, in bytes.
    #[arg(long, env = "OCP_METRICS_DECODED_BYTES_MAX", default_value_t = Limits::default().decoded_bytes_max)]
    decoded_bytes_max: usize,
    /// Most events in one ingest request.
    #[arg(long, env = "OCP_METRICS_EVENTS_PER_REQUEST_MAX", default_value_t = Limits::default().events_per_request_max)]
    events_per_request_max: usize,
    /// Ingest bytes parsed or committed at once (as sent plus decompressed); past it ingest
    /// answers 503 (413 if one request alone needs more).
    #[arg(long, env = "OCP_METRICS_INFLIGHT_INGEST_BYTES_MAX", default_value_t = Limits::default().inflight_ingest_bytes_max)]
    inflight_ingest_bytes_max: usize,
    /// Open HTTP connections at once; past it a new connection closes the one idle longest,
    /// or is answered 503 and closed if every one serves a request.
    #[arg(long, env = "OCP_METRICS_CONNECTIONS_MAX", default_value_t = CONNECTIONS_MAX_DEFAULT)]
    connections_max: usize,
    /// While the store recovers, how long a request waits for it before answering 503, in ms.
    #[arg(long, env = "OCP_METRICS_RECOVERY_REQUEST_WAIT_MS", default_value_t = RECOVERY_REQUEST_WAIT_MS_DEFAULT)]
    recovery_request_wait_ms: u64,
    /// Time a client has to send a request's headers, and how long a keep-alive connection
    /// may sit idle, in ms.
    #[arg(long, env = "OCP_METRICS_HEADER_READ_TIMEOUT_MS", default_value_t = HEADER_READ_TIMEOUT_MS_DEFAULT)]
    header_read_timeout_ms: u64,
    /// Time a client has to send a request's body once its headers arrived, in ms.
    #[arg(long, env = "OCP_METRICS_BODY_READ_TIMEOUT_MS", default_value_t = BODY_READ_TIMEOUT_MS_DEFAULT)]
    body_read_timeout_ms: u64,
    /// Most distinct values of one dimension of one family in one group; events that would add
    /// more are rejected, naming the dimension.
    #[arg(long, env = "OCP_METRICS_DIMENSION_VALUES_MAX", default_value_t = DIMENSION_VALUES_MAX)]
    dimension_values_max: usize,
    /// Most real-time sessions tracked per group; events that would start one more are rejected.
    #[arg(long, env = "OCP_METRICS_RT_SESSIONS_PER_GROUP_MAX", default_value_t = RT_SESSIONS_PER_GROUP_MAX)]
    rt_sessions_per_group_max: usize,
    /// Most series (distinct combinations of dimension values, over all families) per group;
    /// events that would start one more are rejected, naming the combination.
    #[arg(long, env = "OCP_METRICS_SERIES_PER_GROUP_MAX", default_value_t = SERIES_PER_GROUP_MAX)]
    series_per_group_max: usize,
    /// Write a checkpoint (and drop covered log segments) at least this often while ingesting,
    /// in seconds.
    #[arg(long, env = "OCP_METRICS_CHECKPOINT_INTERVAL_SECONDS", default_value_t = EngineConfig::default().checkpoint_interval_seconds)]
    checkpoint_interval_seconds: u64,
    /// Write a checkpoint after this many log bytes since the last one.
    #[arg(long, env = "OCP_METRICS_CHECKPOINT_LOG_BYTES", default_value_t = EngineConfig::default().checkpoint_log_bytes)]
    checkpoint_log_bytes: u64,
    /// Once ingest has been quiet (under 1 MiB of log per second) for 2 s, write a checkpoint
    /// as soon as this many log bytes wait since the last one, so that a crash replays little.
    #[arg(long, env = "OCP_METRICS_CHECKPOINT_QUIET_LOG_BYTES", default_value_t = EngineConfig::default().checkpoint_quiet_log_bytes)]
    checkpoint_quiet_log_bytes: u64,
    /// Size at which the event log starts a new segment file, in bytes.
    #[arg(long, env = "OCP_METRICS_LOG_SEGMENT_BYTES_MAX", default_value_t = FileLogOptions::default().segment_bytes_max)]
    log_segment_bytes_max: u64,
    /// Run as one node of a cluster on these NATS JetStream servers (comma-separated
    /// `nats://host:port` URLs). Every node given the same servers serves the same data. NATS
    /// credentials and TLS come from the environment, never from arguments: OCPM_NATS_CREDS (a
    /// .creds file), or OCPM_NATS_USER with OCPM_NATS_PASSWORD or OCPM_NATS_PASSWORD_FILE, and
    /// OCPM_NATS_CA (a PEM file; requires TLS). See docs/cluster.md.
    #[arg(long, env = "OCP_METRICS_NATS", value_name = "URL[,URL...]")]
    nats: Option<String>,
    /// Replicas of the event stream and the buckets: default 3 when three or more servers are
    /// given, else 1.
    #[arg(long, env = "OCP_METRICS_NATS_REPLICAS", requires = "nats")]
    nats_replicas: Option<usize>,
    /// Cluster mode: how often a node considers storing a snapshot of its state for nodes
    /// that start later, in seconds.
    #[arg(long, env = "OCP_METRICS_SNAPSHOT_INTERVAL_SECONDS", default_value_t = SNAPSHOT_INTERVAL_SECONDS_DEFAULT)]
    snapshot_interval_seconds: u64,
    /// Cluster mode: the fewest events the stream keeps before its end when nodes purge it
    /// behind their snapshots. A node less than this far behind catches up from the stream; one
    /// further behind loads the newest snapshot first.
    #[arg(long, env = "OCP_METRICS_STREAM_KEEP_MESSAGES_MIN", default_value_t = PURGE_KEEP_MESSAGES_MIN)]
    stream_keep_messages_min: u64,
    /// Cluster mode: keep the batch history (720 days of 15-minute slots) in this ClickHouse
    /// server (`http://host:port`) instead of every node's memory. Every node of a cluster must
    /// be given the same. Credentials come from the environment, never from arguments:
    /// OCPM_CLICKHOUSE_USER with OCPM_CLICKHOUSE_PASSWORD or OCPM_CLICKHOUSE_PASSWORD_FILE.
    #[arg(long, env = "OCP_METRICS_CLICKHOUSE_URL", value_name = "URL")]
    clickhouse_url: Option<String>,
    /// The ClickHouse database for the batch history; created with its table when missing.
    #[arg(
        long,
        env = "OCP_METRICS_CLICKHOUSE_DATABASE",
        default_value = "ocp_metrics"
    )]
    clickhouse_database: String,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Client { action, target } => admin_cli::client(action, &target),
        Command::Token { action, target } => admin_cli::token(action, &target),
        Command::Simulate(args) => demo::simulate(args),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        if args.demo && args.clock_start.is_some() {
            anyhow::bail!("--demo streams events on the real clock; drop --clock-start");
        }
        let clock: Arc<dyn Clock> = match args.clock_start {
            Some(t) => Arc::new(OffsetClock::new(t)),
            None => Arc::new(SystemClock),
        };
        let admin_token = match (
            operator_token(ADMIN_TOKEN_ENV, args.admin_token_file.as_deref())?,
            args.demo,
        ) {
            (Some(t), _) => Some(t),
            (None, true) => Some(OperatorToken::parse(
                "the demo's admin token",
                &demo::random_token(),
            )?),
            (None, false) => None,
        };
        let metrics_token = operator_token(METRICS_TOKEN_ENV, args.metrics_token_file.as_deref())?;
        let auth_config = AuthConfig {
            access_token_ttl: std::time::Duration::from_secs(args.access_token_ttl_seconds),
            rate_per_second: args.rate_per_second,
            rate_burst: args.rate_burst,
        };
        let (registry, backend) = mode(&args, auth_config, clock.clone()).await?;
        let config = ServerConfig {
            listen: args.listen.clone(),
            data_dir: args.data_dir.clone(),
            admin_token: admin_token.clone(),
            metrics_token,
            clock: clock.clone(),
            limits: Limits {
                body_bytes_max: args.body_bytes_max,
                decoded_bytes_max: args.decoded_bytes_max,
                events_per_request_max: args.events_per_request_max,
                inflight_ingest_bytes_max: args.inflight_ingest_bytes_max,
                connections_max: args.connections_max,
                recovery_request_wait_ms: args.recovery_request_wait_ms,
                header_read_timeout_ms: args.header_read_timeout_ms,
                body_read_timeout_ms: args.body_read_timeout_ms,
            },
            registry,
            backend: BackendOpener(backend),
            recovery_hold: None,
        };
        let server = Server::bind(config).await.context("starting the server")?;
        let addr = server.local_addr()?;
        // Bound: /healthz answers from now on, /readyz once the store has recovered.
        println!("listening on http://{addr}");
        let demo = match (&admin_token, args.demo) {
            (Some(admin), true) => {
                server.app().ready().await?;
                Some(demo::start(&server, addr, admin.expose(), args.demo_days).await?)
            }
            _ => None,
        };
        server.run(shutdown_signal()).await?;
        if let Some(d) = demo {
            d.stop();
        }
        Ok(())
    })
}

/// The environment variable holding the admin token.
pub(crate) const ADMIN_TOKEN_ENV: &str = "OCP_METRICS_ADMIN_TOKEN";
/// The environment variable holding the metrics scrape token.
const METRICS_TOKEN_ENV: &str = "OCP_METRICS_METRICS_TOKEN";

/// An operator token from the environment variable `env` or from `file` (not both), checked
/// (at least 32 characters). An empty variable counts as unset. Tokens are never taken from
/// the command line, which every local user can read in the process list.
pub(crate) fn operator_token(
    env: &str,
    file: Option<&Path>,
) -> anyhow::Result<Option<OperatorToken>> {
    let from_env = match std::env::var(env) {
        Ok(v) if v.is_empty() => None,
        Ok(v) => Some(v),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => anyhow::bail!("{env} is not valid UTF-8"),
    };
    let (name, raw) = match (from_env, file) {
        (Some(_), Some(path)) => anyhow::bail!(
            "both {env} and a token file ({}) are set; keep one",
            path.display()
        ),
        (Some(v), None) => (env.to_string(), v),
        (None, Some(path)) => (
            format!("the token in {}", path.display()),
            read_token_file(path)?,
        ),
        (None, None) => return Ok(None),
    };
    Ok(Some(OperatorToken::parse(&name, &raw)?))
}

/// The credentials and the backend the flags choose, once: the embedded mode keeps both in
/// the data dir; with `--nats` the node is one of a cluster on those servers, with the
/// credentials in the cluster's KV bucket and the events in its stream, both opened once the
/// server listens (NATS may not answer yet; `/healthz` must).
async fn mode(
    args: &ServeArgs,
    auth: AuthConfig,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(Credentials, OpenBackend)> {
    let Some(servers) = &args.nats else {
        if args.clickhouse_url.is_some() {
            anyhow::bail!(
                "--clickhouse-url needs --nats: ClickHouse holds a cluster's batch history; the embedded mode keeps its own in its data dir, and stays as it is"
            );
        }
        let registry = open_file_registry(&args.data_dir, auth, clock.clone())
            .context("opening the API clients and tokens")?;
        let backend =
            ocp_metrics_store::open_embedded(args.data_dir.clone(), engine_config(args), clock);
        return Ok((registry.into(), backend));
    };
    let nats = NatsOptions::from_env(servers, &format!("ocp-metrics {}", args.listen))?;
    let replicas = args
        .nats_replicas
        .unwrap_or(if nats.servers.len() >= 3 { 3 } else { 1 });
    if replicas == 0 || replicas > 5 {
        anyhow::bail!(
            "--nats-replicas {replicas}: JetStream takes 1 to 5 replicas (3 for a three-server cluster)"
        );
    }
    let client = nats.connect().await?;
    let registry_clock = clock.clone();
    let registry: OpenRegistry = Box::new(move || {
        Box::pin(async move {
            retrying("open the credentials bucket", || {
                open_cluster_registry(
                    client.clone(),
                    replicas,
                    auth.clone(),
                    registry_clock.clone(),
                )
            })
            .await
            .map_err(|e| format!("opening the cluster's API clients and tokens: {e}"))
        })
    });
    let config = NodeConfig {
        nats,
        replicas,
        limits: state_limits(args),
        snapshot_interval_seconds: args.snapshot_interval_seconds,
        stream_keep_messages_min: args.stream_keep_messages_min,
        warehouse: warehouse(args)?,
    };
    Ok((Credentials::Later(registry), open_node(config, clock)))
}

/// The batch warehouse the flags name, if any, with its credentials from the environment.
fn warehouse(args: &ServeArgs) -> anyhow::Result<Option<Arc<dyn Warehouse>>> {
    let Some(url) = &args.clickhouse_url else {
        return Ok(None);
    };
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let password = match (
        env("OCPM_CLICKHOUSE_PASSWORD"),
        env("OCPM_CLICKHOUSE_PASSWORD_FILE"),
    ) {
        (Some(_), Some(_)) => anyhow::bail!(
            "both OCPM_CLICKHOUSE_PASSWORD and OCPM_CLICKHOUSE_PASSWORD_FILE are set; keep one"
        ),
        (Some(p), None) => Some(p),
        (None, Some(path)) => Some(read_token_file(Path::new(&path))?),
        (None, None) => None,
    };
    let config = ClickHouseConfig::parse(
        url,
        &args.clickhouse_database,
        env("OCPM_CLICKHOUSE_USER"),
        password,
    )
    .map_err(anyhow::Error::msg)?;
    Ok(Some(Arc::new(ClickHouseWarehouse::new(&config))))
}

/// The bounds on one group's state, from the `serve` flags.
fn state_limits(args: &ServeArgs) -> StateLimits {
    StateLimits {
        dimension_values_max: args.dimension_values_max,
        rt_sessions_per_group_max: args.rt_sessions_per_group_max,
        series_per_group_max: args.series_per_group_max,
    }
}

/// The embedded engine's configuration from the `serve` flags.
fn engine_config(args: &ServeArgs) -> EngineConfig {
    EngineConfig {
        checkpoint_interval_seconds: args.checkpoint_interval_seconds,
        checkpoint_log_bytes: args.checkpoint_log_bytes,
        checkpoint_quiet_log_bytes: args.checkpoint_quiet_log_bytes,
        log: FileLogOptions {
            segment_bytes_max: args.log_segment_bytes_max,
            ..FileLogOptions::default()
        },
        limits: state_limits(args),
        ..EngineConfig::default()
    }
}

/// The token in `path`, without one trailing newline. Warns when other users can read it.
fn read_token_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the token file {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "the token file is readable by other users; chmod 600 it"
            );
        }
    }
    let line = text.strip_suffix('\n').unwrap_or(&text);
    Ok(line.strip_suffix('\r').unwrap_or(line).to_string())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: draining requests and writing a checkpoint");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `serve` without flags runs with the library defaults, and those are the values
    /// docs/api.md documents for the rate limit and the ingest bounds.
    #[test]
    fn serve_defaults_are_the_documented_ones() {
        let Command::Serve(args) = Cli::try_parse_from(["ocp-metrics", "serve"])
            .unwrap()
            .command
        else {
            panic!("`serve` parsed as another command");
        };
        assert_eq!(args.rate_per_second, 200.0);
        assert_eq!(args.rate_burst, 1000.0);
        assert_eq!(args.access_token_ttl_seconds, 3600);
        assert_eq!(args.body_bytes_max, 32 << 20);
        assert_eq!(args.decoded_bytes_max, 256 << 20);
        assert_eq!(args.events_per_request_max, 200_000);
        assert_eq!(args.inflight_ingest_bytes_max, 256 << 20);
        assert_eq!(args.connections_max, CONNECTIONS_MAX_DEFAULT);
        let auth = AuthConfig::default();
        assert_eq!(
            (args.rate_per_second, args.rate_burst),
            (auth.rate_per_second, auth.rate_burst)
        );
    }
}
