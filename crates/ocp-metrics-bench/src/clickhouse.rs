//! The ClickHouse baseline: Debian's `clickhouse-server` (18.16 in bookworm) started as a
//! background process with its own config in the run's work directory, fed the same NDJSON
//! over its HTTP interface (`INSERT ... FORMAT JSONEachRow`), and asked the same questions in
//! SQL over the raw events (the measurements made with it are in [`measure`]).

mod measure;

pub use measure::{ChOut, run_clickhouse};

use crate::http::{self, IngestTarget};
use crate::procs::{self, Proc};
use crate::queries::{Dialect, QuerySpec, Rollup, Rows};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The raw events as sent: every wire field, with the attribution instant `s` (the
/// `started_at` of end events, else `time`) computed on insert. 18.16 has no DateTime64 and
/// cannot read RFC 3339 with milliseconds into DateTime, so times arrive as strings and are
/// parsed by `parseDateTimeBestEffort` (second precision is all the benchmark's buckets need).
/// `root` is Nullable so that an absent field can default to true as docs/api.md says.
const COLUMNS: &str = "
    id String, type String, time String, `group` String, session_id String,
    channel String, region String, test UInt8, started_at String,
    flow_name String, flow_id String, flow_type String, locale String, root Nullable(UInt8),
    outcome String, miniapp_name String, miniapp_id String, miniapp_type String,
    result String, fail_reason String,
    agent_requests UInt32, no_inputs UInt32, no_matches UInt32,
    system_errors UInt32, critical_errors UInt32,
    s DateTime MATERIALIZED parseDateTimeBestEffort(if(started_at = '', time, started_at))";
const ENGINE: &str = "ENGINE = MergeTree PARTITION BY toYYYYMM(s) ORDER BY (`group`, type, s)";

/// A running ClickHouse.
#[derive(Debug)]
pub struct ClickHouse {
    pub proc: Proc,
    pub url: String,
    dir: PathBuf,
    config: PathBuf,
    agent: ureq::Agent,
}

fn write_config(dir: &Path, http_port: u16, tcp_port: u16) -> anyhow::Result<PathBuf> {
    for sub in ["data", "tmp", "user_files", "log", "format_schemas"] {
        std::fs::create_dir_all(dir.join(sub))?;
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
    <max_connections>4096</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>1073741824</uncompressed_cache_size>
    <mark_cache_size>1073741824</mark_cache_size>
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
    <profiles>
        <default>
            <max_memory_usage>12000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>
            <max_threads>2</max_threads>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries><errors>0</errors><result_rows>0</result_rows>
                <read_rows>0</read_rows><execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
"#;
    let path = dir.join("config.xml");
    std::fs::write(&path, config)?;
    std::fs::write(dir.join("users.xml"), users)?;
    Ok(path)
}

/// Path of the server binary, if installed.
pub fn server_binary() -> Option<PathBuf> {
    ["/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| {
            let out = Command::new("sh")
                .args([
                    "-c",
                    "command -v clickhouse-server || command -v clickhouse",
                ])
                .output()
                .ok()?;
            let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
            (!s.is_empty()).then(|| PathBuf::from(s))
        })
}

impl ClickHouse {
    /// Starts a server over `dir` (its data kept there) and waits until it answers a query.
    /// Returns it and the time from spawn to the first answered query.
    pub fn start(dir: &Path) -> anyhow::Result<(ClickHouse, Duration)> {
        let bin = server_binary().context(
            "clickhouse-server is not installed (apt-get install clickhouse-server), or pass --no-clickhouse",
        )?;
        let config = write_config(dir, procs::free_port()?, procs::free_port()?)?;
        Self::spawn(&bin, dir, &config)
    }

    fn spawn(bin: &Path, dir: &Path, config: &Path) -> anyhow::Result<(ClickHouse, Duration)> {
        let text = std::fs::read_to_string(config)?;
        let port = text
            .split("<http_port>")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .context("no http_port in the config")?
            .to_string();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("log/stdout.log"))?;
        let started = Instant::now();
        let mut cmd = if bin.ends_with("clickhouse") {
            let mut c = Command::new(bin);
            c.arg("server");
            c
        } else {
            Command::new(bin)
        };
        let child = cmd
            .arg(format!("--config-file={}", config.display()))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let ch = ClickHouse {
            proc: Proc::new("clickhouse-server", child),
            url: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
            config: config.to_path_buf(),
            agent: http::agent(),
        };
        loop {
            if let Ok((200, _)) = http::send(&ch.agent, "POST", &ch.url, &[], Some(b"SELECT 1")) {
                break;
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!(
                    "clickhouse-server did not answer within 2 minutes; see {}/log",
                    dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok((ch, started.elapsed()))
    }

    /// SIGTERM, then start again on the same data; returns the time from spawn to the first
    /// answered query.
    pub fn restart(&mut self) -> anyhow::Result<Duration> {
        self.proc.terminate(Duration::from_secs(120))?;
        let bin = server_binary().context("clickhouse-server vanished")?;
        let (fresh, ready) = Self::spawn(&bin, &self.dir, &self.config)?;
        *self = fresh;
        Ok(ready)
    }

    /// Runs one statement; returns the body, or fails with ClickHouse's message.
    pub fn exec(&self, sql: &str) -> anyhow::Result<String> {
        let (status, body) = http::send(&self.agent, "POST", &self.url, &[], Some(sql.as_bytes()))?;
        let text = String::from_utf8_lossy(&body).to_string();
        if status != 200 {
            bail!("ClickHouse answered {status} to `{sql}`: {text}");
        }
        Ok(text)
    }

    /// Runs a `SELECT count() ...` and returns the count.
    pub fn count(&self, sql: &str) -> anyhow::Result<u64> {
        let text = self.exec(sql)?;
        text.trim()
            .parse()
            .with_context(|| format!("ClickHouse answered `{}` to `{sql}`", text.trim()))
    }

    pub fn create_tables(&self) -> anyhow::Result<()> {
        self.exec("DROP TABLE IF EXISTS raw")?;
        self.exec("DROP TABLE IF EXISTS ev")?;
        self.exec(&format!("CREATE TABLE raw ({COLUMNS}) {ENGINE}"))?;
        self.exec(&format!("CREATE TABLE ev ({COLUMNS}) {ENGINE}"))?;
        Ok(())
    }

    pub fn ingest_target(&self) -> IngestTarget {
        IngestTarget {
            url: format!(
                "{}/?query=INSERT%20INTO%20raw%20FORMAT%20JSONEachRow&input_format_skip_unknown_fields=1",
                self.url
            ),
            headers: vec![("Content-Type".into(), "application/x-ndjson".into())],
            ocp_answer: false,
        }
    }

    /// Copies `raw` into `ev` keeping one row per `(group, id)`; returns the seconds it took.
    pub fn dedupe(&self) -> anyhow::Result<f64> {
        let t = Instant::now();
        // Columns by name: `SELECT *` leaves out the MATERIALIZED `s`, which `ev` recomputes.
        self.exec("INSERT INTO ev SELECT * FROM raw LIMIT 1 BY `group`, id")?;
        Ok(t.elapsed().as_secs_f64())
    }

    /// Creates and fills the rollup tables (a `SummingMergeTree` each) from `ev`; returns the
    /// seconds it took. Dimension columns are typed by their values: `Enum8` (or `Enum16`)
    /// over the distinct values in `ev` plus the values the `specs` filter on, `String` past
    /// 32,767 values; `test` is a `UInt8`; sums are `UInt64`.
    pub fn create_rollups(&self, rollups: &[Rollup], specs: &[QuerySpec]) -> anyhow::Result<f64> {
        let t = Instant::now();
        for r in rollups {
            let table = r.table();
            let mut cols = vec!["`group` String".to_string(), "slot DateTime".to_string()];
            for dim in r.family.raw_dims() {
                cols.push(format!("{dim} {}", self.dim_type(dim, r, specs)?));
            }
            cols.extend(r.columns().into_iter().map(|c| format!("{c} UInt64")));
            let key = r.family.raw_dims().join(", ");
            self.exec(&format!("DROP TABLE IF EXISTS {table}"))?;
            self.exec(&format!(
                "CREATE TABLE {table} ({}) ENGINE = SummingMergeTree() PARTITION BY toYYYYMM(slot) ORDER BY (`group`, slot, {key})",
                cols.join(", ")
            ))?;
            self.exec(&format!(
                "INSERT INTO {table} {}",
                r.select_sql(Dialect::ClickHouse, "ev")
            ))?;
        }
        Ok(t.elapsed().as_secs_f64())
    }

    /// The column type of a rollup dimension (see [`ClickHouse::create_rollups`]).
    fn dim_type(&self, dim: &str, r: &Rollup, specs: &[QuerySpec]) -> anyhow::Result<String> {
        if dim == "test" {
            return Ok("UInt8".into());
        }
        let text = self.exec(&format!(
            "SELECT DISTINCT {dim} FROM ev FORMAT TabSeparatedRaw"
        ))?;
        let mut values: std::collections::BTreeSet<String> =
            text.lines().map(String::from).collect();
        for spec in specs.iter().filter(|s| s.family == r.family) {
            for (api_dim, vals) in &spec.filters {
                if spec.column(api_dim) == dim {
                    values.extend(vals.iter().map(|v| v.to_string()));
                }
            }
        }
        let kind = match values.len() {
            0..=127 => "Enum8",
            128..=32767 => "Enum16",
            _ => return Ok("String".into()),
        };
        let items: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let v = v.replace('\\', "\\\\").replace('\'', "\\'");
                format!("'{v}' = {}", i + 1)
            })
            .collect();
        Ok(format!("{kind}({})", items.join(", ")))
    }

    /// Bytes on disk of the active parts of `table`.
    pub fn table_bytes(&self, table: &str) -> anyhow::Result<u64> {
        Ok(self
            .exec(&format!(
                "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND table = '{table}'"
            ))?
            .trim()
            .parse()
            .unwrap_or(0))
    }

    /// Runs a query returning rows as TSV fields.
    pub fn rows(&self, sql: &str) -> anyhow::Result<Rows> {
        let text = self.exec(&format!("{sql} FORMAT TabSeparated"))?;
        Ok(text
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\t').map(String::from).collect())
            .collect())
    }

    /// Runs a query and reads the full answer, for timing.
    pub fn time(&self, agent: &ureq::Agent, sql: &str) -> anyhow::Result<Duration> {
        let t = Instant::now();
        let body = format!("{sql} FORMAT TabSeparated");
        let (status, out) = http::send(agent, "POST", &self.url, &[], Some(body.as_bytes()))?;
        if status != 200 {
            bail!(
                "ClickHouse answered {status}: {}",
                String::from_utf8_lossy(&out)
            );
        }
        Ok(t.elapsed())
    }

    /// Merges still running (parts being written in the background after inserts).
    pub fn wait_for_merges(&self, timeout: Duration) -> anyhow::Result<()> {
        let t = Instant::now();
        while t.elapsed() < timeout {
            let n: u64 = self
                .exec("SELECT count() FROM system.merges")?
                .trim()
                .parse()
                .unwrap_or(0);
            if n == 0 {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }
}
