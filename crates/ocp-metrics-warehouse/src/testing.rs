//! A real `clickhouse-server` for tests and measurements: free loopback ports, a quiet config,
//! data and logs in a temporary directory, stopped (and restartable) by PID.
//!
//! There is no fallback and no skipping: a test that needs ClickHouse and cannot find the server
//! fails and says how to install it.

use crate::ClickHouseConfig;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first query. It starts in about a second; the rest
/// is headroom for two cores shared with builds.
pub const START_TIMEOUT_MS: u64 = 60_000;

/// A running server. Dropping it kills the server and deletes its directory.
#[derive(Debug)]
pub struct TestClickHouse {
    child: Option<Child>,
    http_port: u16,
    config: PathBuf,
    // Declared last so the server is killed before its directory is removed.
    dir: tempfile::TempDir,
}

impl TestClickHouse {
    /// Starts a server and waits until it answers. Panics, with its log, if it does not.
    pub fn start() -> TestClickHouse {
        let dir = tempfile::Builder::new()
            .prefix("ocpm-clickhouse-")
            .tempdir()
            .expect("create a temp dir for clickhouse-server");
        let (http_port, tcp_port) = (free_port(), free_port());
        let config = write_config(dir.path(), http_port, tcp_port);
        let mut server = TestClickHouse {
            child: None,
            http_port,
            config,
            dir,
        };
        server.spawn();
        server
    }

    /// The config a node uses to reach this server, with database `database`.
    pub fn config(&self, database: &str) -> ClickHouseConfig {
        ClickHouseConfig::parse(&self.url(), database, None, None).expect("a valid test config")
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// SIGKILL, as a crash or a lost machine would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same data and port (after [`TestClickHouse::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs one statement over HTTP and returns the body (panics on an error answer).
    pub fn exec(&self, sql: &str) -> String {
        http_post(self.http_port, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("log/stdout.log"))
            .expect("create the server's stdout log");
        let child = Command::new(server_binary())
            .arg(format!("--config-file={}", self.config.display()))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone a log handle"))
            .stderr(log)
            .spawn()
            .expect("start clickhouse-server");
        self.child = Some(child);
        let started = Instant::now();
        while http_post(self.http_port, "SELECT 1").is_err() {
            if started.elapsed() > Duration::from_millis(START_TIMEOUT_MS) {
                let log = std::fs::read_to_string(self.dir.path().join("log/error.log"))
                    .unwrap_or_default();
                panic!("clickhouse-server did not answer within {START_TIMEOUT_MS} ms:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestClickHouse {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The server binary: Debian installs it in /usr/sbin.
fn server_binary() -> PathBuf {
    ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect(
            "clickhouse-server is not installed: `apt-get install clickhouse-server` (.ci/run does)",
        )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A minimal blocking HTTP POST, so that test setup needs no runtime.
fn http_post(port: u16, body: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    let (head, rest) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("{head}\n{rest}"));
    }
    // Chunked or not, the tests only look at small bodies: strip chunk sizes when present.
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut lines = rest.split("\r\n");
        while let Some(size) = lines.next() {
            if usize::from_str_radix(size.trim(), 16).unwrap_or(0) == 0 {
                break;
            }
            out.push_str(lines.next().unwrap_or(""));
        }
        return Ok(out);
    }
    Ok(rest.to_string())
}

fn write_config(dir: &Path, http_port: u16, tcp_port: u16) -> PathBuf {
    for sub in ["data", "tmp", "user_files", "log", "format_schemas"] {
        std::fs::create_dir_all(dir.join(sub)).expect("create a server directory");
    }
    let d = dir.display();
    let config = format!(
        r#"<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>{d}/log/server.log</log>
        <errorlog>{d}/log/error.log</errorlog>
        <size>100M</size>
        <count>1</count>
    </logger>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <max_concurrent_queries>100</max_concurrent_queries>
    <mark_cache_size>268435456</mark_cache_size>
    <path>{d}/data/</path>
    <tmp_path>{d}/tmp/</tmp_path>
    <user_files_path>{d}/user_files/</user_files_path>
    <format_schema_path>{d}/format_schemas/</format_schema_path>
    <users_config>{d}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
</yandex>
"#
    );
    let users = r#"<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
    </interval></default></quotas>
</yandex>
"#;
    let path = dir.join("config.xml");
    std::fs::write(&path, config).expect("write the server config");
    std::fs::write(dir.join("users.xml"), users).expect("write the users config");
    path
}
