//! The DuckDB baseline: runs `bench/duckdb_baseline.py` (the `duckdb` Python package) on the
//! same NDJSON file and the same queries in DuckDB SQL, and reads its JSON result.

use crate::queries::{self, Dialect, QuerySpec, Rows};
use crate::stats::Latencies;
use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Deserialize)]
pub struct DuckQuery {
    /// Over the deduplicated raw events.
    pub rows: Rows,
    pub latencies_ms: Vec<f64>,
    /// Over the rollup tables.
    pub rollup_rows: Rows,
    pub rollup_latencies_ms: Vec<f64>,
}

#[derive(Debug, Deserialize)]
pub struct DuckResult {
    pub version: String,
    pub load_seconds: f64,
    pub raw_rows: u64,
    pub dedupe_seconds: f64,
    pub rollup_seconds: f64,
    pub rows: u64,
    pub db_bytes: u64,
    pub queries: BTreeMap<String, DuckQuery>,
    /// Queries per second over the rollups, and over the raw events.
    pub qps: f64,
    pub qps_raw: f64,
}

impl DuckResult {
    /// The measurements, for the JSON results (the answers are in the comparisons).
    pub fn json(&self) -> serde_json::Value {
        let queries: serde_json::Map<_, _> = self
            .queries
            .iter()
            .map(|(k, q)| {
                (
                    k.clone(),
                    json!({"raw": q.latencies().summary(), "rollup": q.rollup_latencies().summary()}),
                )
            })
            .collect();
        json!({
            "version": self.version, "load_seconds": self.load_seconds,
            "dedupe_seconds": self.dedupe_seconds, "rollup_seconds": self.rollup_seconds,
            "rows": self.rows, "db_bytes": self.db_bytes,
            "qps_rollup": self.qps, "qps_raw": self.qps_raw, "queries": queries,
        })
    }
}

impl DuckQuery {
    pub fn latencies(&self) -> Latencies {
        latencies(&self.latencies_ms)
    }

    pub fn rollup_latencies(&self) -> Latencies {
        latencies(&self.rollup_latencies_ms)
    }
}

fn latencies(samples_ms: &[f64]) -> Latencies {
    let mut l = Latencies::default();
    for ms in samples_ms {
        l.push_ms(*ms);
    }
    l
}

#[allow(clippy::too_many_arguments)]
pub fn run(
    python: &str,
    script: &Path,
    work: &Path,
    ndjson: &Path,
    specs: &[QuerySpec],
    group: &str,
    iterations: usize,
    qps_seconds: f64,
) -> anyhow::Result<DuckResult> {
    let spec = json!({
        "ndjson_path": ndjson,
        "db_path": work.join("duck.db"),
        "rollups": queries::rollups(specs).iter().map(|r| json!({
            "table": r.table(),
            "sql": r.select_sql(Dialect::DuckDb, "ev"),
        })).collect::<Vec<_>>(),
        "queries": specs.iter().map(|q| Ok(json!({
            "name": q.name,
            "sql": q.sql(Dialect::DuckDb, "ev", group),
            "rollup_sql": q.rollup_sql(Dialect::DuckDb, group)?,
        }))).collect::<anyhow::Result<Vec<_>>>()?,
        "iterations": iterations,
        "qps_clients": 8,
        "qps_seconds": qps_seconds,
    });
    let spec_path = work.join("duckdb-spec.json");
    let out_path = work.join("duckdb-result.json");
    std::fs::write(&spec_path, serde_json::to_vec_pretty(&spec)?)?;
    let status = Command::new(python)
        .arg(script)
        .arg(&spec_path)
        .arg(&out_path)
        .status()
        .with_context(|| format!("running {python} {}", script.display()))?;
    if !status.success() {
        bail!(
            "{} failed ({status}); is the duckdb package installed (pip install duckdb)?",
            script.display()
        );
    }
    let text = std::fs::read(&out_path)?;
    let result: DuckResult = serde_json::from_slice(&text).context("reading the DuckDB result")?;
    let _ = std::fs::remove_file(work.join("duck.db"));
    Ok(result)
}
