//! The demo: backfills history and streams live traffic through the public ingest path.
//! (Filled in once the simulator lands.)

use ocp_metrics_core::Clock;
use ocp_metrics_server::Server;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Base URL of the target server.
    #[arg(long)]
    target: String,
}

#[derive(Debug)]
pub struct Demo;

impl Demo {
    pub fn stop(self) {}
}

pub fn random_token() -> String {
    format!("demo-admin-{:x}", std::process::id())
}

pub async fn start(
    _server: &Server,
    _addr: SocketAddr,
    _clock: Arc<dyn Clock>,
    _days: u32,
) -> anyhow::Result<Demo> {
    Ok(Demo)
}

pub fn simulate(_args: SimulateArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
