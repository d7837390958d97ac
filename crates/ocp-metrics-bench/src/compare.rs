//! The verdict on answers: every baseline's answers compared with ours bucket by bucket, and
//! every baseline's row counts with the data file.

use crate::data::DataStats;
use crate::queries::{self, Norm, QuerySpec};
use crate::report::Results;
use crate::say;
use anyhow::Context;
use serde_json::{Value, json};

/// Compares every baseline answer with ours, bucket by bucket; returns whether all agree and
/// every comparison for the JSON results. `inject_disagreement` perturbs every baseline answer
/// first (see `--inject-disagreement`). An all-zero answer of ours also fails: the data would
/// not reach that query, so agreeing would prove nothing.
pub fn answers(r: Results, inject_disagreement: bool) -> anyhow::Result<(bool, Vec<Value>)> {
    let mut ok = true;
    let mut checks = Vec::new();
    for (i, spec) in r.ours.specs.iter().enumerate() {
        let mine = &r.ours.answers[i];
        if queries::total(mine) == 0 {
            eprintln!(
                "  {}: ocp-metrics answered all zeros: the data does not reach this query",
                spec.name
            );
            ok = false;
        }
        let mut baselines = Vec::new();
        if let Some(ch) = r.ch {
            baselines.push((
                "ClickHouse (rollup)",
                "clickhouse_rollup",
                &ch.rollup_rows_of[i],
            ));
            baselines.push(("ClickHouse (raw)", "clickhouse_raw", &ch.rows_of[i]));
        }
        if let Some(duck) = r.duck {
            let q = duck
                .queries
                .get(spec.name)
                .with_context(|| format!("DuckDB has no result for {}", spec.name))?;
            baselines.push(("DuckDB (rollup)", "duckdb_rollup", &q.rollup_rows));
            baselines.push(("DuckDB (raw)", "duckdb_raw", &q.rows));
        }
        for (system, key, rows) in baselines {
            let mut theirs = queries::norm_rows(spec, rows)?;
            if inject_disagreement {
                queries::perturb(&mut theirs);
            }
            let d = queries::diff(mine, &theirs, 8);
            report_check(spec, system, &d, mine);
            ok &= d.is_empty();
            checks.push(
                json!({"query": spec.name, "system": key, "equal": d.is_empty(), "differences": d}),
            );
        }
    }
    Ok((ok, checks))
}

fn report_check(spec: &QuerySpec, system: &str, diffs: &[String], mine: &Norm) {
    if diffs.is_empty() {
        say(format!(
            "{:<20} equal to {system} ({} series, total {})",
            spec.name,
            mine.len(),
            queries::total(mine)
        ));
    } else {
        eprintln!("  {:<20} DIFFERS from {system}:", spec.name);
        for d in diffs {
            eprintln!("      {d}");
        }
    }
}

/// Whether a baseline holds every line of the file (`source` names where they came from) and
/// exactly the distinct events after deduplication; prints what it holds if not.
pub fn holds_all_rows(
    system: &str,
    source: &str,
    raw_rows: u64,
    rows: u64,
    data: &DataStats,
) -> bool {
    let holds = raw_rows == data.lines && rows == data.unique;
    if !holds {
        eprintln!(
            "  {system} holds {raw_rows} raw rows ({source} {}) and {rows} distinct (expected {})",
            data.lines, data.unique
        );
    }
    holds
}
