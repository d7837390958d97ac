//! The demo and the `simulate` subcommand. Both send simulated traffic through the public
//! ingest API over HTTP, exactly as a producer would, so the demo exercises the real path.

use anyhow::Context;
use jiff::{SignedDuration, Timestamp};
use ocp_metrics_auth::{ClientName, GroupGrant, ScopeSet};
use ocp_metrics_server::Server;
use ocp_metrics_sim::send::{LiveOptions, run_live_with};
use ocp_metrics_sim::{SimConfig, Simulator};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// Events per ingest request sent by the demo.
const DEMO_BATCH_EVENTS: usize = 5_000;
/// On a restart with data already present, the demo resends from this far back; the dedupe
/// horizon (49 h) is longer, so nothing already counted is counted again.
const DEMO_RESUME_HOURS: i64 = 47;

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Base URL of the target server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    target: String,
    /// Bearer token with the events:write scope.
    #[arg(long, env = "OCP_METRICS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Events per second; without it, events are sent in real time as they happen.
    #[arg(long)]
    rate: Option<f64>,
    /// Start this many minutes in the past (caught up as fast as the server takes it).
    #[arg(long, default_value_t = 0)]
    backfill_minutes: i64,
    /// Events per request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Seed of the simulation (the same seed gives the same events).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Comma-separated OCP groups to simulate.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ocp-qa,acme-bank,globex-telco"
    )]
    groups: Vec<String>,
    /// Sessions per hour per group at the daily peak.
    #[arg(long, default_value_t = 300.0)]
    sessions_per_hour: f64,
    /// Compress request bodies with gzip.
    #[arg(long)]
    gzip: bool,
    /// Stop after this many seconds.
    #[arg(long)]
    duration_seconds: Option<u64>,
}

pub fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let base = SimConfig {
        seed: args.seed,
        groups: args.groups,
        sessions_per_hour_peak: args.sessions_per_hour,
        ..SimConfig::default()
    };
    let config = match args.rate {
        Some(rate) => base.with_event_rate(rate),
        None => base,
    };
    let sim = Simulator::new(config).context("simulation settings")?;
    let stop = Arc::new(AtomicBool::new(false));
    if let Some(secs) = args.duration_seconds {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(secs));
            stop.store(true, Ordering::SeqCst);
        });
    }
    let from = Timestamp::now() - SignedDuration::from_mins(args.backfill_minutes);
    let opts = LiveOptions {
        from: Some(from),
        rate_events_per_sec: args.rate,
        batch_events: args.batch,
        gzip: args.gzip,
    };
    let started = std::time::Instant::now();
    let stats = run_live_with(&args.target, args.token.as_deref(), &sim, &opts, &stop)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "sent {} events in {} requests over {secs:.1} s ({:.0} events/s): {} accepted, {} duplicates, {} rejected",
        stats.events_sent,
        stats.batches,
        stats.events_sent as f64 / secs.max(1e-9),
        stats.accepted,
        stats.duplicates,
        stats.rejected
    );
    Ok(())
}

/// The running demo traffic.
#[derive(Debug)]
pub struct Demo {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Demo {
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A random admin token for a demo started without one: 256 bits as 64 hex characters, well
/// over the 32 characters an operator token needs.
pub fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates a demo token, prints how to use it, and starts streaming: a backfill of `days` of
/// history on first start (or of the last 47 hours on a restart), then live traffic.
pub async fn start(
    server: &Server,
    addr: SocketAddr,
    admin_token: &str,
    days: u32,
) -> anyhow::Result<Demo> {
    let app = server.app();
    let (_, token) = app
        .auth()
        .map_err(|e| anyhow::anyhow!("the demo's registry: {e}"))?
        .create_token(
            ClientName::parse("demo")?,
            GroupGrant::parse(&["*"])?,
            ScopeSet::parse(&["metrics:read", "events:write"])?,
            None,
        )
        .await?;
    let now = Timestamp::now();
    let resume = !app.ready().await?.groups().is_empty();
    let from = if resume {
        now - SignedDuration::from_hours(DEMO_RESUME_HOURS)
    } else {
        now - SignedDuration::from_hours(24 * i64::from(days))
    };
    print_welcome(addr, &token, admin_token, resume, days);
    let sim = Simulator::new(SimConfig {
        seed: 7,
        ..SimConfig::default()
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        let target = format!("http://{addr}");
        std::thread::Builder::new()
            .name("ocp-demo".into())
            .spawn(move || {
                let opts = LiveOptions {
                    from: Some(from),
                    rate_events_per_sec: None,
                    batch_events: DEMO_BATCH_EVENTS,
                    gzip: false,
                };
                match run_live_with(&target, Some(&token), &sim, &opts, &stop) {
                    Ok(s) => tracing::info!(
                        events = s.events_sent,
                        accepted = s.accepted,
                        "demo traffic stopped"
                    ),
                    Err(e) => tracing::error!(error = %e, "demo traffic failed"),
                }
            })?
    };
    Ok(Demo {
        stop,
        thread: Some(thread),
    })
}

fn print_welcome(addr: SocketAddr, token: &str, admin_token: &str, resume: bool, days: u32) {
    let what = if resume {
        format!(
            "resuming demo traffic ({DEMO_RESUME_HOURS} h resent, duplicates are dropped), then live"
        )
    } else {
        format!(
            "backfilling {days} days of demo traffic (the dashboard fills in as it goes), then live"
        )
    };
    println!(
        "\n{what}\n\n  web page:    http://{addr}/#token={token}\n  token:       {token}\n  admin token: {admin_token}\n\n  try:\n    curl -s -X POST http://{addr}/metrics-api/v3/realtime/metrics/sessions \\\n      -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\\n      -d '{{\"metrics\":[\"session.initiated\"],\"filters\":{{}},\"group\":\"ocp-qa\",\"downsampling\":\"hour\",\"start\":\"{start}\",\"end\":\"{end}\"}}'\n",
        start = (Timestamp::now() - SignedDuration::from_hours(6)).strftime("%Y/%m/%d %H:00:00"),
        end = (Timestamp::now() + SignedDuration::from_hours(1)).strftime("%Y/%m/%d %H:00:00"),
    );
}
