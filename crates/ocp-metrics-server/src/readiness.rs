//! Readiness: where the backend is in its life cycle (opening, ready, failed), for `/readyz`,
//! for holding requests back while a store recovers, and for waiting on it.

use ocp_metrics_auth::Registry;
use ocp_metrics_service::Backend;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Where the store is in its life cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Recovering,
    Ready,
    Failed(String),
}

/// The backend once opened, and the phase for `/readyz` and for waiting on it.
#[derive(Debug)]
pub struct Readiness {
    backend: OnceLock<Arc<dyn Backend>>,
    /// The clients and tokens: set at bind when the binary opened them, else before the
    /// backend is opened (so a request that passed the readiness gate always finds them).
    registry: OnceLock<Arc<Registry>>,
    phase: watch::Sender<Phase>,
    started: Instant,
}

impl Readiness {
    pub(crate) fn new() -> Readiness {
        Readiness {
            backend: OnceLock::new(),
            registry: OnceLock::new(),
            phase: watch::Sender::new(Phase::Recovering),
            started: Instant::now(),
        }
    }

    pub(crate) fn set_ready(&self, backend: Arc<dyn Backend>) {
        let _ = self.backend.set(backend);
        self.phase.send_replace(Phase::Ready);
    }

    pub(crate) fn set_failed(&self, message: String) {
        self.phase.send_replace(Phase::Failed(message));
    }

    pub(crate) fn set_registry(&self, registry: Arc<Registry>) {
        let _ = self.registry.set(registry);
    }

    pub fn registry(&self) -> Option<&Arc<Registry>> {
        self.registry.get()
    }

    pub fn phase(&self) -> Phase {
        self.phase.borrow().clone()
    }

    pub fn backend(&self) -> Option<&Arc<dyn Backend>> {
        self.backend.get()
    }

    /// Waits until recovery is over (or `timeout` passed) and returns the phase then.
    pub async fn settled(&self, timeout: Duration) -> Phase {
        let mut rx = self.phase.subscribe();
        let wait = rx.wait_for(|p| *p != Phase::Recovering);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(p)) => p.clone(),
            _ => self.phase(),
        }
    }

    /// Resolves if and when recovery fails.
    pub async fn failed(&self) {
        let mut rx = self.phase.subscribe();
        if rx
            .wait_for(|p| matches!(p, Phase::Failed(_)))
            .await
            .is_err()
        {
            std::future::pending::<()>().await;
        }
    }

    /// How long the server has been up (recovering or not).
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}
