//! [`Warehouse`] on ClickHouse (tested against Debian's 18.16), over HTTP with the `clickhouse`
//! crate and RowBinary.
//!
//! **Table.** `batch_slots`: one row per (group, family, series, slot, block) with the block's
//! counters, a `ReplacingMergeTree` whose sorting key is that whole identity, partitioned by
//! 28-day slot ranges ([`PARTITION_SLOTS`]; 18.16 has no table TTL, so retention drops
//! partitions).
//!
//! **Why writes are idempotent.** Every node cuts the same blocks with the same cells, so a
//! second write of block `b`, whoever makes it, inserts rows identical to the first's, identity
//! included. A `ReplacingMergeTree` keeps one row per identity when it merges parts, and a read
//! with `FINAL` collapses them before merging; so a block written twice, or written partly and
//! then wholly, reads as one write.
//!
//! **Why reads are fast anyway.** `FINAL` merges on the fly, which costs several times a plain
//! scan. A partition stored in a single part has no duplicate identities: one insert holds
//! each identity once, and a merge keeps one of each. So a read lists the active parts, reads
//! single-part partitions without `FINAL` and the others with it, then lists the parts again:
//! if a partition read without `FINAL` changed meanwhile (an insert or a merge raced the read),
//! the read is done again with `FINAL` everywhere. ClickHouse reads the parts that were active
//! when the query started, so a partition with the same single part before and after was read
//! as that part. [`Warehouse::maintain`] asks ClickHouse to merge (`OPTIMIZE ... FINAL`) each
//! partition that holds several parts and has not been written for [`COLD_AFTER_MS`], so history
//! is read without `FINAL` and only the partitions being written (the current four weeks, mostly) are
//! read with it.

use crate::{
    BlockCell, BoxFuture, Fold, Maintenance, PARTITION_SLOTS, ReadRequest, ReadRow, Warehouse,
    WarehouseError, family_code,
};
use clickhouse::Client;
use ocp_metrics_core::metrics::{COLUMNS_MAX, DIMS_MAX};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest one insert (one block) may take before it counts as failed and is retried.
pub const WRITE_TIMEOUT_MS: u64 = 30_000;
/// The longest one read may take; a query's answer waits for it.
pub const READ_TIMEOUT_MS: u64 = 20_000;
/// A partition not written for this long is merged into one part by `maintain`.
pub const COLD_AFTER_MS: u64 = 30_000;
/// Partitions merged per `maintain` call at most, and the time after which a call starts no
/// further merge: a merge rewrites a partition, so the work of one call stays bounded (a bulk
/// load of history leaves up to 105 split partitions; a small one merges in milliseconds).
const MERGES_PER_PASS_MAX: usize = 128;
const MERGE_PASS_BUDGET_MS: u64 = 5_000;
/// The table's name in the configured database.
const TABLE: &str = "batch_slots";

/// Where the warehouse is and how to log in. The password never comes from argv: the binary
/// reads it from the environment or a file.
#[derive(Clone)]
pub struct ClickHouseConfig {
    /// `http://HOST:PORT`.
    pub url: String,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl ClickHouseConfig {
    /// Checks the URL's scheme and the database name (letters, digits and `_`, as it is
    /// spliced into DDL); the message says how to fix it.
    pub fn parse(
        url: &str,
        database: &str,
        user: Option<String>,
        password: Option<String>,
    ) -> Result<ClickHouseConfig, String> {
        // Built without a TLS stack: ClickHouse is reached on a private network (or through a
        // local TLS-terminating proxy), so an https URL is refused rather than failing later.
        if !url.starts_with("http://") {
            return Err(format!(
                "--clickhouse-url `{url}` must be a plain HTTP URL such as http://127.0.0.1:8123 (this build has no TLS client; use a private network or a local TLS proxy)"
            ));
        }
        let valid = !database.is_empty()
            && database.len() <= 64
            && database
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(format!(
                "--clickhouse-database `{database}` must be 1 to 64 letters, digits or `_`"
            ));
        }
        Ok(ClickHouseConfig {
            url: url.trim_end_matches('/').to_string(),
            database: database.to_string(),
            user,
            password,
        })
    }
}

/// The ClickHouse warehouse; see the module documentation.
#[derive(Clone)]
pub struct ClickHouseWarehouse {
    /// Bound to the configured database.
    client: Client,
    /// Bound to no database: creates it.
    server: Client,
    database: String,
    /// When this process last wrote each partition: `maintain` merges only cold ones.
    written: Arc<Mutex<BTreeMap<u32, Instant>>>,
    cold_after: Duration,
}

impl std::fmt::Debug for ClickHouseWarehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseWarehouse")
            .field("database", &self.database)
            .finish()
    }
}

/// A stored row, in the table's column order (RowBinary is positional).
#[derive(Debug, clickhouse::Row, Serialize)]
struct StoredRow<'a> {
    tenant: &'a str,
    family: u8,
    d0: &'a str,
    d1: &'a str,
    d2: &'a str,
    d3: &'a str,
    d4: &'a str,
    d5: &'a str,
    d6: &'a str,
    slot: u32,
    block: u64,
    c0: u64,
    c1: u64,
    c2: u64,
    c3: u64,
    c4: u64,
    c5: u64,
    c6: u64,
    c7: u64,
    c8: u64,
}

/// A summed row, in the read query's select order.
#[derive(Debug, clickhouse::Row, Deserialize)]
struct SummedRow {
    k0: String,
    k1: String,
    k2: String,
    k3: String,
    k4: String,
    k5: String,
    k6: String,
    s_min: u32,
    s0: u64,
    s1: u64,
    s2: u64,
    s3: u64,
    s4: u64,
    s5: u64,
    s6: u64,
    s7: u64,
    s8: u64,
}

/// The table's columns and types, as `system.columns` reports them.
const COLUMNS: [(&str, &str); 20] = [
    ("tenant", "String"),
    ("family", "UInt8"),
    ("d0", "String"),
    ("d1", "String"),
    ("d2", "String"),
    ("d3", "String"),
    ("d4", "String"),
    ("d5", "String"),
    ("d6", "String"),
    ("slot", "UInt32"),
    ("block", "UInt64"),
    ("c0", "UInt64"),
    ("c1", "UInt64"),
    ("c2", "UInt64"),
    ("c3", "UInt64"),
    ("c4", "UInt64"),
    ("c5", "UInt64"),
    ("c6", "UInt64"),
    ("c7", "UInt64"),
    ("c8", "UInt64"),
];

const _: () = assert!(
    DIMS_MAX == 7 && COLUMNS_MAX == 9,
    "the table has 7 dims, 9 counters"
);

impl ClickHouseWarehouse {
    pub fn new(config: &ClickHouseConfig) -> ClickHouseWarehouse {
        let mut server = Client::default()
            .with_url(&config.url)
            .with_validation(false);
        if let Some(user) = &config.user {
            server = server.with_user(user);
        }
        if let Some(password) = &config.password {
            server = server.with_password(password);
        }
        ClickHouseWarehouse {
            client: server.clone().with_database(&config.database),
            server,
            database: config.database.clone(),
            written: Arc::default(),
            cold_after: Duration::from_millis(COLD_AFTER_MS),
        }
    }

    /// Sets how long a partition must go unwritten before `maintain` merges it (tests).
    pub fn with_cold_after(mut self, cold_after: Duration) -> ClickHouseWarehouse {
        self.cold_after = cold_after;
        self
    }

    async fn create(&self) -> Result<(), WarehouseError> {
        let db = &self.database;
        timed(
            READ_TIMEOUT_MS,
            self.server
                .query(&format!("CREATE DATABASE IF NOT EXISTS {db}"))
                .execute(),
        )
        .await?;
        let columns: Vec<String> = COLUMNS.iter().map(|(n, t)| format!("{n} {t}")).collect();
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {TABLE} ({}) ENGINE = ReplacingMergeTree \
             PARTITION BY intDiv(slot, {PARTITION_SLOTS}) \
             ORDER BY (tenant, family, slot, d0, d1, d2, d3, d4, d5, d6, block)",
            columns.join(", ")
        );
        timed(READ_TIMEOUT_MS, self.client.query(&ddl).execute()).await?;
        let mut found: Vec<(String, String)> = timed(
            READ_TIMEOUT_MS,
            self.server
                .query("SELECT name, type FROM system.columns WHERE database = ? AND table = ?")
                .bind(db.as_str())
                .bind(TABLE)
                .fetch_all(),
        )
        .await?;
        // Inserts name their columns, so only the set matters (18.16 has no column position).
        found.sort();
        let mut want: Vec<(String, String)> = COLUMNS
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        want.sort();
        if found != want {
            return Err(WarehouseError::Refused(format!(
                "table {db}.{TABLE} exists with columns {found:?}, not the {want:?} this build writes; point --clickhouse-database at a database of this version"
            )));
        }
        Ok(())
    }

    /// The active parts of each partition (by partition number).
    async fn parts(&self) -> Result<BTreeMap<u32, BTreeSet<String>>, WarehouseError> {
        let rows: Vec<(String, String)> = timed(
            READ_TIMEOUT_MS,
            self.server
                .query(
                    "SELECT partition, name FROM system.parts WHERE database = ? AND table = ? AND active",
                )
                .bind(self.database.as_str())
                .bind(TABLE)
                .fetch_all(),
        )
        .await?;
        let mut out: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
        for (partition, name) in rows {
            let p = partition.trim_matches('\'').parse::<u32>().map_err(|_| {
                WarehouseError::Refused(format!(
                    "table {}.{TABLE} has a partition `{partition}` this build did not make",
                    self.database
                ))
            })?;
            out.entry(p).or_default().insert(name);
        }
        Ok(out)
    }

    async fn write(&self, block: u64, cells: &[BlockCell]) -> Result<(), WarehouseError> {
        let mut insert = self
            .client
            .insert::<StoredRow<'_>>(TABLE)
            .await
            .map_err(unavailable)?;
        let mut partitions = BTreeSet::new();
        for c in cells {
            let Some(family) = family_code(c.family) else {
                continue;
            };
            partitions.insert(c.slot / PARTITION_SLOTS);
            let [d0, d1, d2, d3, d4, d5, d6] = &c.dims;
            let [c0, c1, c2, c3, c4, c5, c6, c7, c8] = c.counters;
            let row = StoredRow {
                tenant: &c.group,
                family,
                d0,
                d1,
                d2,
                d3,
                d4,
                d5,
                d6,
                slot: c.slot,
                block,
                c0,
                c1,
                c2,
                c3,
                c4,
                c5,
                c6,
                c7,
                c8,
            };
            insert.write(&row).await.map_err(unavailable)?;
        }
        insert.end().await.map_err(unavailable)?;
        let now = Instant::now();
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        for p in partitions {
            written.insert(p, now);
        }
        Ok(())
    }

    async fn maintain_now(&self, horizon: u32) -> Result<Maintenance, WarehouseError> {
        let parts = self.parts().await?;
        let mut done = Maintenance::default();
        for p in parts.keys() {
            let end = u64::from(*p + 1) * u64::from(PARTITION_SLOTS);
            if end <= u64::from(horizon) {
                let sql = format!("ALTER TABLE {TABLE} DROP PARTITION {p}");
                timed(WRITE_TIMEOUT_MS, self.client.query(&sql).execute()).await?;
                done.dropped += 1;
            }
        }
        let cold: Vec<u32> = {
            let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            let cold_after = self.cold_after;
            parts
                .iter()
                .filter(|(p, names)| {
                    names.len() > 1
                        && u64::from(**p + 1) * u64::from(PARTITION_SLOTS) > u64::from(horizon)
                        && written.get(p).is_none_or(|t| t.elapsed() >= cold_after)
                })
                .map(|(p, _)| *p)
                .take(MERGES_PER_PASS_MAX)
                .collect()
        };
        let started = Instant::now();
        for p in cold {
            if started.elapsed() >= Duration::from_millis(MERGE_PASS_BUDGET_MS) {
                break;
            }
            let sql = format!("OPTIMIZE TABLE {TABLE} PARTITION {p} FINAL");
            timed(WRITE_TIMEOUT_MS, self.client.query(&sql).execute()).await?;
            done.merged += 1;
        }
        Ok(done)
    }

    async fn read_rows(&self, r: &ReadRequest) -> Result<Vec<ReadRow>, WarehouseError> {
        let Some(family) = family_code(r.family) else {
            return Ok(Vec::new());
        };
        if r.hi <= r.lo {
            return Ok(Vec::new());
        }
        let before = self.parts().await?;
        let single = |p: &u32| before.get(p).is_none_or(|names| names.len() == 1);
        let first = r.lo / PARTITION_SLOTS;
        let last = (r.hi - 1) / PARTITION_SLOTS;
        let (plain, merged): (Vec<u32>, Vec<u32>) = (first..=last)
            .filter(|p| before.contains_key(p))
            .partition(single);
        let mut rows = self.select(r, family, &plain, false).await?;
        rows.extend(self.select(r, family, &merged, true).await?);
        let after = self.parts().await?;
        if plain.iter().any(|p| before.get(p) != after.get(p)) {
            // A part was added or merged in a partition read without FINAL while it was read:
            // read everything with FINAL, which is right whatever the parts.
            let all: Vec<u32> = plain.into_iter().chain(merged).collect();
            return self.select(r, family, &all, true).await;
        }
        Ok(rows)
    }

    /// One SELECT over the given partitions (nothing when there are none).
    async fn select(
        &self,
        r: &ReadRequest,
        family: u8,
        partitions: &[u32],
        final_: bool,
    ) -> Result<Vec<ReadRow>, WarehouseError> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let sql = select_sql(r, partitions, final_);
        let mut q = self
            .client
            .query(&sql)
            .bind(r.group.as_str())
            .bind(family)
            .bind(r.lo)
            .bind(r.hi)
            .bind(r.cut);
        for (_, values) in &r.filters {
            q = q.bind(values.as_slice());
        }
        let rows: Vec<SummedRow> = timed(READ_TIMEOUT_MS, q.fetch_all()).await?;
        Ok(rows.into_iter().map(SummedRow::into_read_row).collect())
    }
}

/// The read query: kept dimensions, the smallest slot and the counter sums of each fold group.
/// Aliases differ from column names: ClickHouse substitutes an alias everywhere it is named, so
/// `min(slot) AS slot` would put an aggregate into the WHERE clause.
fn select_sql(r: &ReadRequest, partitions: &[u32], final_: bool) -> String {
    let mut sql = String::from("SELECT ");
    for (i, keep) in r.keep.iter().enumerate() {
        if *keep {
            let _ = write!(sql, "d{i} AS k{i}, ");
        } else {
            let _ = write!(sql, "'' AS k{i}, ");
        }
    }
    sql.push_str("min(slot) AS s_min");
    for (c, needed) in r.counters.iter().enumerate() {
        if *needed {
            let _ = write!(sql, ", sum(c{c}) AS s{c}");
        } else {
            let _ = write!(sql, ", toUInt64(0) AS s{c}");
        }
    }
    let _ = write!(
        sql,
        " FROM {TABLE}{} WHERE tenant = ? AND family = ? AND slot >= ? AND slot < ? AND block <= ? AND ({})",
        if final_ { " FINAL" } else { "" },
        partition_ranges(partitions)
    );
    for (dim, _) in &r.filters {
        let _ = write!(sql, " AND has(?, d{dim})");
    }
    sql.push_str(" GROUP BY ");
    for i in 0..DIMS_MAX {
        let _ = write!(sql, "k{i}, ");
    }
    sql.push_str(&fold_expr(&r.fold));
    sql
}

/// The slot ranges of `partitions`, contiguous runs merged, as a condition.
fn partition_ranges(partitions: &[u32]) -> String {
    let mut sorted = partitions.to_vec();
    sorted.sort_unstable();
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for p in sorted {
        match runs.last_mut() {
            Some((_, end)) if *end == p => *end = p + 1,
            _ => runs.push((p, p + 1)),
        }
    }
    runs.iter()
        .map(|(a, b)| {
            format!(
                "(slot >= {} AND slot < {})",
                u64::from(*a) * u64::from(PARTITION_SLOTS),
                u64::from(*b) * u64::from(PARTITION_SLOTS)
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// The fold group of a slot: `intDiv(slot + offset(slot), unit)`.
fn fold_expr(fold: &Fold) -> String {
    if fold.unit <= 1 {
        return "slot".to_string();
    }
    let offset = match fold.periods.as_slice() {
        [] => "0".to_string(),
        [(_, off)] => off.to_string(),
        [(_, first), rest @ ..] => {
            // multiIf(slot < start2, off1, slot < start3, off2, ..., offN)
            let mut e = String::from("multiIf(");
            let mut previous = *first;
            for (start, off) in rest {
                let _ = write!(e, "slot < {start}, {previous}, ");
                previous = *off;
            }
            let _ = write!(e, "{previous})");
            e
        }
    };
    format!("intDiv(toInt64(slot) + {offset}, {})", fold.unit)
}

impl SummedRow {
    fn into_read_row(self) -> ReadRow {
        ReadRow {
            dims: [
                self.k0, self.k1, self.k2, self.k3, self.k4, self.k5, self.k6,
            ],
            slot: self.s_min,
            counters: [
                self.s0, self.s1, self.s2, self.s3, self.s4, self.s5, self.s6, self.s7, self.s8,
            ],
        }
    }
}

impl Warehouse for ClickHouseWarehouse {
    fn prepare(&self) -> BoxFuture<'_, Result<(), WarehouseError>> {
        Box::pin(self.create())
    }

    fn write_block(
        &self,
        block: u64,
        cells: Vec<BlockCell>,
    ) -> BoxFuture<'_, Result<(), WarehouseError>> {
        Box::pin(async move {
            match tokio::time::timeout(
                Duration::from_millis(WRITE_TIMEOUT_MS),
                self.write(block, &cells),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(WarehouseError::Unavailable(format!(
                    "writing block {block} took over {WRITE_TIMEOUT_MS} ms"
                ))),
            }
        })
    }

    fn read(&self, request: &ReadRequest) -> BoxFuture<'_, Result<Vec<ReadRow>, WarehouseError>> {
        let request = request.clone();
        Box::pin(async move { self.read_rows(&request).await })
    }

    fn maintain(&self, horizon: u32) -> BoxFuture<'_, Result<Maintenance, WarehouseError>> {
        Box::pin(self.maintain_now(horizon))
    }
}

/// Runs one ClickHouse call with a deadline.
async fn timed<T>(
    ms: u64,
    f: impl std::future::Future<Output = clickhouse::error::Result<T>>,
) -> Result<T, WarehouseError> {
    match tokio::time::timeout(Duration::from_millis(ms), f).await {
        Ok(r) => r.map_err(unavailable),
        Err(_) => Err(WarehouseError::Unavailable(format!(
            "ClickHouse did not answer within {ms} ms"
        ))),
    }
}

/// Every client error counts as "try again later": a server that refuses a statement for good
/// (a schema mismatch) is caught by `prepare` at start.
fn unavailable(e: clickhouse::error::Error) -> WarehouseError {
    WarehouseError::Unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, database: &str, expect: expect_test::Expect) {
        let got = match ClickHouseConfig::parse(url, database, None, Some("secret".into())) {
            Ok(c) => format!("{c:?}"),
            Err(e) => e,
        };
        expect.assert_eq(&got);
    }

    #[test]
    fn configs_are_parsed_and_never_print_the_password() {
        check(
            "http://127.0.0.1:8123/",
            "ocp_metrics",
            expect_test::expect![[
                r#"ClickHouseConfig { url: "http://127.0.0.1:8123", database: "ocp_metrics", user: None, password: Some("<set>") }"#
            ]],
        );
        check(
            "https://ch:8443",
            "ocp_metrics",
            expect_test::expect![
                "--clickhouse-url `https://ch:8443` must be a plain HTTP URL such as http://127.0.0.1:8123 (this build has no TLS client; use a private network or a local TLS proxy)"
            ],
        );
        check(
            "http://ch:8123",
            "ocp-metrics; DROP",
            expect_test::expect![
                "--clickhouse-database `ocp-metrics; DROP` must be 1 to 64 letters, digits or `_`"
            ],
        );
    }

    #[test]
    fn folds_become_integer_sql() {
        let fold = Fold {
            unit: 96,
            periods: vec![(0, 22), (100, 23)],
        };
        expect_test::expect!["intDiv(toInt64(slot) + multiIf(slot < 100, 22, 23), 96)"]
            .assert_eq(&fold_expr(&fold));
        expect_test::expect!["slot"].assert_eq(&fold_expr(&Fold::none()));
        expect_test::expect!["(slot >= 0 AND slot < 5376) OR (slot >= 10752 AND slot < 13440)"]
            .assert_eq(&partition_ranges(&[1, 0, 4]));
    }
}
