//! Real `nats-server` processes for tests and measurements: N servers forming one JetStream
//! cluster on free loopback ports, with their configs, stores and logs in a temporary
//! directory, and ways to stop, `kill -9` and restart one of them.
//!
//! There is no fallback and no skipping: a test that needs NATS and cannot find `nats-server`
//! fails and says how to install it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a cluster may take to elect a JetStream meta leader. A three-server cluster on
/// loopback needs about a second; the rest is headroom for two cores shared with builds.
pub const META_LEADER_TIMEOUT_MS: u64 = 30_000;
/// How long a server may take to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT_MS: u64 = 10_000;
/// Memory and file store limits per test server: small, so several test clusters fit.
const MAX_MEMORY_STORE_BYTES: u64 = 256 * 1024 * 1024;
const MAX_FILE_STORE_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// A running test cluster. Dropping it kills every server and deletes its directory.
#[derive(Debug)]
pub struct NatsCluster {
    servers: Vec<Server>,
    // Declared last so the servers are killed before their directory is removed.
    dir: tempfile::TempDir,
}

#[derive(Debug)]
struct Server {
    name: String,
    client_port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl NatsCluster {
    /// Starts `n` servers (one JetStream cluster when `n > 1`, a standalone JetStream server
    /// when `n == 1`) and waits until JetStream answers on every one of them, which in a cluster
    /// means a meta leader has been elected. Panics, with the servers' logs, if not.
    pub async fn start(n: usize) -> NatsCluster {
        assert!(n >= 1, "a cluster has at least one server");
        let binary = nats_server_binary();
        let dir = tempfile::Builder::new()
            .prefix("ocpm-nats-")
            .tempdir()
            .expect("create a temp dir for nats-server");
        let ports = free_ports(2 * n);
        let (client_ports, route_ports) = ports.split_at(n);
        let mut servers = Vec::with_capacity(n);
        for i in 0..n {
            let name = format!("n{i}");
            let store = dir.path().join(&name);
            let config = dir.path().join(format!("{name}.conf"));
            std::fs::write(
                &config,
                server_config(
                    &name,
                    &store,
                    client_ports[i],
                    route_ports[i],
                    route_ports,
                    n,
                ),
            )
            .expect("write a nats-server config");
            servers.push(Server {
                log: dir.path().join(format!("{name}.log")),
                name,
                client_port: client_ports[i],
                config,
                child: None,
            });
        }
        let mut cluster = NatsCluster { servers, dir };
        for i in 0..n {
            cluster.spawn(i, &binary);
        }
        cluster.wait_ready().await;
        cluster
    }

    /// Every server's client URL, for a node's `--nats` list.
    pub fn urls(&self) -> Vec<String> {
        (0..self.servers.len()).map(|i| self.url(i)).collect()
    }

    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.servers[i].client_port)
    }

    /// The `server_name` of server `i` (what JetStream reports as a stream's leader).
    pub fn name(&self, i: usize) -> &str {
        &self.servers[i].name
    }

    /// The index of the server called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.servers.iter().position(|s| s.name == name)
    }

    /// The process id of server `i`, `None` while it is down.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.servers[i].child.as_ref().map(Child::id)
    }

    /// `kill -9` server `i`: no shutdown, no flush, exactly like a crash of the process.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.servers[i].child.take() {
            child.kill().expect("SIGKILL nats-server");
            child.wait().expect("reap nats-server");
        }
    }

    /// Stops server `i` with SIGTERM (a clean shutdown), killing it if it does not exit in
    /// [`STOP_TIMEOUT_MS`].
    pub fn stop(&mut self, i: usize) {
        let Some(mut child) = self.servers[i].child.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {} failed", child.id());
        let deadline = Instant::now() + Duration::from_millis(STOP_TIMEOUT_MS);
        while Instant::now() < deadline {
            if child.try_wait().expect("poll nats-server").is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child
            .kill()
            .expect("SIGKILL nats-server after SIGTERM timed out");
        child.wait().expect("reap nats-server");
    }

    /// Starts server `i` again with its config and store (after [`NatsCluster::kill`] or
    /// [`NatsCluster::stop`]) and waits until JetStream answers on it.
    pub async fn restart(&mut self, i: usize) {
        assert!(self.servers[i].child.is_none(), "server {i} is running");
        self.spawn(i, &nats_server_binary());
        self.wait_ready().await;
    }

    /// Waits until JetStream answers on every running server and can place a stream with one
    /// replica per running server. A meta leader is elected before every peer has registered,
    /// and until then creating an R3 stream fails with "no suitable peers for placement"; a
    /// probe stream (created and deleted) is the direct test.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_millis(META_LEADER_TIMEOUT_MS);
        let running: Vec<usize> = (0..self.servers.len())
            .filter(|&i| self.servers[i].child.is_some())
            .collect();
        for &i in &running {
            loop {
                let error = match self.jetstream_places(i, running.len()).await {
                    Ok(()) => break,
                    Err(e) => e,
                };
                if Instant::now() > deadline {
                    panic!(
                        "JetStream not ready on {} after {META_LEADER_TIMEOUT_MS} ms: {error}\n{}",
                        self.url(i),
                        self.logs()
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// The tail of every server's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for s in &self.servers {
            let log = std::fs::read_to_string(&s.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            out.push_str(&format!("--- {} ({}) ---\n", s.name, s.log.display()));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// The temporary directory holding configs, stores and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(&mut self, i: usize, binary: &Path) {
        let s = &mut self.servers[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&s.log)
            .expect("open a nats-server log");
        let child = Command::new(binary)
            .arg("--config")
            .arg(&s.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone a log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        s.child = Some(child);
    }

    async fn jetstream_places(&self, i: usize, replicas: usize) -> Result<(), String> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_millis(500))
            .connect(self.url(i))
            .await
            .map_err(|e| e.to_string())?;
        let js = async_nats::jetstream::ContextBuilder::new()
            .timeout(Duration::from_millis(2_000))
            .build(client);
        let name = format!("OCPM_READY_PROBE_{i}");
        js.create_stream(async_nats::jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![format!("ocpm.ready-probe.{i}")],
            storage: async_nats::jetstream::stream::StorageType::Memory,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
        js.delete_stream(&name)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for s in &mut self.servers {
            if let Some(mut child) = s.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The `nats-server` binary: on `PATH`, or Debian's `/usr/sbin` (not on a normal user's PATH).
/// Panics with how to install it when missing.
pub fn nats_server_binary() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("nats-server"));
    for c in candidates {
        if c.is_file() {
            return c;
        }
    }
    panic!(
        "nats-server is not installed, and the cluster tests need a real one: install Debian's \
         package with `apt-get update && apt-get install -y nats-server` (.ci/run does this)"
    );
}

/// Free loopback ports, all held open until every one is found so none repeats.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

fn server_config(
    name: &str,
    store: &Path,
    client_port: u16,
    route_port: u16,
    all_route_ports: &[u16],
    n: usize,
) -> String {
    let mut config = format!(
        "server_name: \"{name}\"\nlisten: \"127.0.0.1:{client_port}\"\n\
         jetstream {{\n  store_dir: \"{}\"\n  max_memory_store: {MAX_MEMORY_STORE_BYTES}\n  \
         max_file_store: {MAX_FILE_STORE_BYTES}\n}}\n",
        store.display()
    );
    if n > 1 {
        let routes: Vec<String> = all_route_ports
            .iter()
            .filter(|&&p| p != route_port)
            .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
            .collect();
        config.push_str(&format!(
            "cluster {{\n  name: \"ocpm-test\"\n  listen: \"127.0.0.1:{route_port}\"\n  \
             routes: [{}]\n}}\n",
            routes.join(", ")
        ));
    }
    config
}
