//! The fixed set of dashboard queries: each as an ocp-metrics API request and as SQL over raw
//! events (ClickHouse and DuckDB dialects) computing the same numbers under docs/api.md
//! sections 4 and 6, and the comparison of their answers bucket by bucket.

use anyhow::{Context, bail};
use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The zone of the batch dashboards: +05:30, so day and week buckets are not UTC's.
pub const BATCH_ZONE: &str = "Asia/Kolkata";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Family {
    RtMiniapps,
    BatchMiniapps,
    BatchSessions,
    BatchDialogs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Gran {
    FiveMin,
    Day,
    Week,
}

impl Gran {
    fn api(self) -> &'static str {
        match self {
            Gran::FiveMin => "five_min",
            Gran::Day => "day",
            Gran::Week => "week",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    ClickHouse,
    DuckDb,
}

/// One benchmark query.
#[derive(Debug, Clone, Serialize)]
pub struct QuerySpec {
    pub name: &'static str,
    pub title: &'static str,
    pub family: Family,
    pub metrics: Vec<&'static str>,
    pub gran: Gran,
    pub tz: &'static str,
    /// API dimension names and their values (empty: any value).
    pub filters: Vec<(&'static str, Vec<&'static str>)>,
    pub drilldown: bool,
    pub start: Timestamp,
    pub end: Timestamp,
}

/// The benchmark's queries, with windows computed from `now` so that every answer is stable for
/// the length of a run: the RT window ends after the current 5-minute bucket and starts 10
/// minutes inside the 48-hour limit; the batch windows start at a local midnight (a Monday for
/// weeks) inside the 720-day limit and end after today's (this week's) bucket.
pub fn suite(now: Timestamp) -> anyhow::Result<Vec<QuerySpec>> {
    let five = 300;
    let rt_end = Timestamp::from_second(now.as_second().div_euclid(five) * five + five)?;
    let rt_start = rt_end - SignedDuration::from_hours(48) + SignedDuration::from_mins(10);
    let tz = TimeZone::get(BATCH_ZONE)?;
    let today = now.to_zoned(tz.clone()).date();
    let day_start_date = today.checked_sub(719.days())?;
    let day_start = day_start_date.to_zoned(tz.clone())?.timestamp();
    let day_end = today
        .checked_add(1.days())?
        .to_zoned(tz.clone())?
        .timestamp();
    let mut week_start_date = day_start_date;
    while week_start_date.weekday() != Weekday::Monday {
        week_start_date = week_start_date.checked_add(1.days())?;
    }
    let mut this_monday = today;
    while this_monday.weekday() != Weekday::Monday {
        this_monday = this_monday.checked_sub(1.days())?;
    }
    let week_start = week_start_date.to_zoned(tz.clone())?.timestamp();
    let week_end = this_monday.checked_add(7.days())?.to_zoned(tz)?.timestamp();

    let rt = |name, title, metrics: Vec<&'static str>, filters, drilldown| QuerySpec {
        name,
        title,
        family: Family::RtMiniapps,
        metrics,
        gran: Gran::FiveMin,
        tz: "UTC",
        filters,
        drilldown,
        start: rt_start,
        end: rt_end,
    };
    let batch = |name, title, family, metrics: Vec<&'static str>, gran, filters, drilldown| {
        let (start, end) = match gran {
            Gran::Week => (week_start, week_end),
            _ => (day_start, day_end),
        };
        QuerySpec {
            name,
            title,
            family,
            metrics,
            gran,
            tz: BATCH_ZONE,
            filters,
            drilldown,
            start,
            end,
        }
    };
    Ok(vec![
        rt(
            "rt_5min",
            "RT 48 h five_min, miniapps, no drilldown",
            vec![
                "miniapps_invocations",
                "miniapps_invocations_successful",
                "miniapps_no_inputs",
            ],
            vec![],
            false,
        ),
        rt(
            "rt_5min_drill",
            "RT 48 h five_min, miniapps, drilldown name x locale (~1,000 series)",
            vec!["miniapps_invocations"],
            vec![("miniapp_name", vec![]), ("locale", vec![])],
            true,
        ),
        batch(
            "batch_day",
            "batch 720 d by day (Asia/Kolkata), miniapps, no filters",
            Family::BatchMiniapps,
            vec!["totalinvocations", "successfultasks", "errortasks"],
            Gran::Day,
            vec![],
            false,
        ),
        batch(
            "batch_day_filtered",
            "batch 720 d by day (Asia/Kolkata), miniapps, channel + language filters",
            Family::BatchMiniapps,
            vec!["totalinvocations", "successfultasks", "errortasks"],
            Gran::Day,
            vec![
                ("channel", vec!["omIVR"]),
                ("language", vec!["en-US", "hi-IN", "ta-IN"]),
            ],
            false,
        ),
        batch(
            "batch_week",
            "batch 720 d by week (Asia/Kolkata), sessions, no filters",
            Family::BatchSessions,
            vec!["sessions", "invocations"],
            Gran::Week,
            vec![],
            false,
        ),
        batch(
            "batch_week_filtered",
            "batch 720 d by week (Asia/Kolkata), dialogs, channel + region filters",
            Family::BatchDialogs,
            vec!["dialogs", "transferred", "error"],
            Gran::Week,
            vec![("channel", vec!["omIVR"]), ("region", vec!["eu1"])],
            false,
        ),
        batch(
            "batch_day_drill",
            "batch 720 d by day (Asia/Kolkata), miniapps, drilldown name x language (~1,000 series)",
            Family::BatchMiniapps,
            vec!["totalinvocations"],
            Gran::Day,
            vec![("miniapp_name", vec![]), ("language", vec![])],
            true,
        ),
    ])
}

fn local_string(t: Timestamp, tz: &str) -> anyhow::Result<String> {
    Ok(t.to_zoned(TimeZone::get(tz)?)
        .strftime("%Y/%m/%d %H:%M:%S")
        .to_string())
}

impl QuerySpec {
    pub fn path(&self) -> &'static str {
        match self.family {
            Family::RtMiniapps => "/metrics-api/v3/realtime/metrics/miniapps",
            Family::BatchMiniapps => "/metrics-api/v3/batch/metrics/miniapps",
            Family::BatchSessions => "/metrics-api/v3/batch/metrics/sessions",
            Family::BatchDialogs => "/metrics-api/v3/batch/metrics/dialogs",
        }
    }

    /// The API request body (docs/api.md section 5).
    pub fn body(&self, group: &str) -> anyhow::Result<String> {
        let filters: serde_json::Map<String, Value> = self
            .filters
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        Ok(json!({
            "metrics": self.metrics,
            "filters": filters,
            "start": local_string(self.start, self.tz)?,
            "end": local_string(self.end, self.tz)?,
            "group": group,
            "downsampling": self.gran.api(),
            "drilldown": self.drilldown,
            "timezone": self.tz,
        })
        .to_string())
    }

    /// The dimensions a drilldown answer is split by, in the order of `filters`.
    pub fn split_dims(&self) -> Vec<&'static str> {
        if self.drilldown {
            self.filters.iter().map(|(k, _)| *k).collect()
        } else {
            Vec::new()
        }
    }

    /// The raw-event column of an API dimension of this query's family.
    pub fn column(&self, dim: &str) -> &'static str {
        let dialogs = self.family == Family::BatchDialogs;
        match dim {
            "miniapp_name" if dialogs => "flow_name",
            "miniapp_type" if dialogs => "flow_type",
            "miniapp_id" if dialogs => "flow_id",
            "miniapp_name" => "miniapp_name",
            "miniapp_type" => "miniapp_type",
            "miniapp_id" => "miniapp_id",
            "locale" | "language" => "locale",
            "channel" => "channel",
            "region" => "region",
            "miniapp_fail_reason" => "fail_reason",
            other => panic!("the bench has no column for dimension {other}"),
        }
    }

    /// SQL over a table of deduplicated raw events that yields, per bucket label (the local
    /// bucket start as `yyyy-MM-dd HH:mm:ss`) and per combination of split dimensions, one
    /// column per metric. Attribution follows docs/api.md section 4: the time column `s` is the
    /// `started_at` of end events.
    pub fn sql(&self, dialect: Dialect, table: &str, group: &str) -> String {
        let mut conds = vec![format!("{} = '{group}'", quote(dialect, "group"))];
        conds.push(self.family.type_cond(dialect));
        let metrics = self
            .metrics
            .iter()
            .map(|m| metric_expr(dialect, m))
            .collect();
        self.grouped(dialect, table, "s", conds, metrics)
    }

    /// The same answer as [`QuerySpec::sql`], from the family's rollup table (see [`Rollup`]):
    /// the sums of its slots, bucketed exactly as the raw events are (a slot lies wholly inside
    /// one bucket, since every bucket of the suite starts on a slot boundary: the suite's zones
    /// are offset by whole quarter hours). Fails if the window is not slot-aligned.
    pub fn rollup_sql(&self, dialect: Dialect, group: &str) -> anyhow::Result<String> {
        let slot = self.family.slot_seconds();
        let (a, b) = (self.start.as_second(), self.end.as_second());
        if a % slot != 0 || b % slot != 0 {
            bail!(
                "{}: window {a}..{b} is not aligned to the {slot} s slots of the rollup",
                self.name
            );
        }
        let conds = vec![format!("{} = '{group}'", quote(dialect, "group"))];
        let metrics = self
            .metrics
            .iter()
            .map(|m| format!("sum({})", rollup_column(m)))
            .collect();
        Ok(self.grouped(dialect, self.family.rollup_table(), "slot", conds, metrics))
    }

    /// `SELECT label, dims..., m0... FROM (SELECT bucket, dims..., aggregates FROM table WHERE
    /// conds, filters and window GROUP BY bucket, dims)`: grouped on the bucket's `DateTime`,
    /// formatted afterwards, in no particular order (the comparison needs none).
    fn grouped(
        &self,
        dialect: Dialect,
        table: &str,
        time: &str,
        mut conds: Vec<String>,
        metrics: Vec<String>,
    ) -> String {
        use Dialect::*;
        let tz = self.tz;
        let slot_is_bucket = time == "slot" && self.gran == Gran::FiveMin && tz == "UTC";
        let (bucket, label) = match (dialect, self.gran) {
            _ if slot_is_bucket && dialect == ClickHouse => {
                (time.to_string(), format!("toString(d, '{tz}')"))
            }
            (ClickHouse, Gran::FiveMin) => (
                format!("toStartOfFiveMinute({time})"),
                format!("toString(d, '{tz}')"),
            ),
            (ClickHouse, Gran::Day) => (
                format!("toStartOfDay({time}, '{tz}')"),
                format!("toString(d, '{tz}')"),
            ),
            (ClickHouse, Gran::Week) => (
                format!("toMonday({time}, '{tz}')"),
                "concat(toString(d), ' 00:00:00')".to_string(),
            ),
            (DuckDb, g) => {
                let local = format!("timezone('{tz}', {time})");
                let trunc = match g {
                    Gran::FiveMin => format!("time_bucket(INTERVAL '5 minutes', {local})"),
                    Gran::Day => format!("date_trunc('day', {local})"),
                    Gran::Week => format!("date_trunc('week', {local})"),
                };
                (trunc, "strftime(d, '%Y-%m-%d %H:%M:%S')".to_string())
            }
        };
        for (dim, values) in &self.filters {
            if !values.is_empty() {
                let list: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
                conds.push(format!("{} IN ({})", self.column(dim), list.join(", ")));
            }
        }
        let (a, b) = (self.start.as_second(), self.end.as_second());
        conds.push(match dialect {
            ClickHouse => format!("{time} >= toDateTime({a}) AND {time} < toDateTime({b})"),
            DuckDb => format!("{time} >= to_timestamp({a}) AND {time} < to_timestamp({b})"),
        });
        let dims: Vec<String> = self
            .split_dims()
            .iter()
            .map(|d| self.column(d).to_string())
            .collect();
        let names: Vec<String> = (0..metrics.len()).map(|i| format!("m{i}")).collect();
        let mut inner = vec![format!("{bucket} AS d")];
        inner.extend(dims.iter().cloned());
        inner.extend(
            metrics
                .iter()
                .zip(&names)
                .map(|(e, n)| format!("{e} AS {n}")),
        );
        let mut outer = vec![format!("{label} AS label")];
        outer.extend(dims.iter().cloned());
        outer.extend(names.iter().cloned());
        let mut group_by = vec!["d".to_string()];
        group_by.extend(dims);
        format!(
            "SELECT {} FROM (SELECT {} FROM {table} WHERE {} GROUP BY {})",
            outer.join(", "),
            inner.join(", "),
            conds.join(" AND "),
            group_by.join(", "),
        )
    }
}

/// A column name quoted for the dialect (`group` is a keyword in both).
fn quote(dialect: Dialect, col: &str) -> String {
    match dialect {
        Dialect::ClickHouse => format!("`{col}`"),
        Dialect::DuckDb => format!("\"{col}\""),
    }
}

/// A metric as an aggregate over raw events (docs/api.md section 6; batch classes first match).
fn metric_expr(dialect: Dialect, m: &str) -> String {
    let count_if = |cond: &str| match dialect {
        Dialect::ClickHouse => format!("countIf({cond})"),
        Dialect::DuckDb => format!("count(*) FILTER (WHERE {cond})"),
    };
    let count = || match dialect {
        Dialect::ClickHouse => "count()".to_string(),
        Dialect::DuckDb => "count(*)".to_string(),
    };
    let errs = "system_errors + critical_errors";
    match m {
        "miniapps_invocations" | "totalinvocations" | "dialogs" => count(),
        "miniapps_invocations_successful" => count_if("result = 'success'"),
        "miniapps_no_inputs" => "sum(no_inputs)".to_string(),
        // Batch classes, first match wins (docs/api.md section 6).
        "successfultasks" => count_if(&format!("result = 'success' AND {errs} = 0")),
        "errortasks" => count_if(&format!("(result = 'error' OR {errs} > 0)")),
        "sessions" => count_if("type = 'session_end'"),
        "invocations" => count_if("type = 'miniapp_end'"),
        "transferred" => count_if(&format!("outcome = 'transferred' AND {errs} = 0")),
        "error" => count_if(&format!("(outcome = 'error' OR {errs} > 0)")),
        other => panic!("the bench has no SQL for metric {other}"),
    }
}

/// The rollup column holding a metric's per-slot sum.
fn rollup_column(metric: &str) -> String {
    format!("m_{metric}")
}

impl Family {
    /// The baselines' rollup table of this family.
    pub fn rollup_table(self) -> &'static str {
        match self {
            Family::RtMiniapps => "r_rt_miniapps",
            Family::BatchMiniapps => "r_batch_miniapps",
            Family::BatchSessions => "r_batch_sessions",
            Family::BatchDialogs => "r_batch_dialogs",
        }
    }

    /// Our slot width for the family: 5 minutes for real time, 15 for batch.
    pub fn slot_seconds(self) -> i64 {
        match self {
            Family::RtMiniapps => 300,
            _ => 900,
        }
    }

    /// The raw-event columns of our dimensions of the family, in our order (the dimensions of
    /// `Family::dims` in ocp-metrics-core's `metrics.rs`).
    pub fn raw_dims(self) -> &'static [&'static str] {
        match self {
            Family::RtMiniapps => &[
                "miniapp_name",
                "miniapp_type",
                "locale",
                "channel",
                "test",
                "region",
            ],
            Family::BatchMiniapps => &[
                "miniapp_name",
                "miniapp_type",
                "locale",
                "channel",
                "miniapp_id",
                "fail_reason",
                "region",
            ],
            Family::BatchSessions => &["channel", "region"],
            Family::BatchDialogs => &[
                "flow_name",
                "flow_type",
                "locale",
                "channel",
                "flow_id",
                "region",
            ],
        }
    }

    /// The events the family counts.
    fn type_cond(self, dialect: Dialect) -> String {
        match self {
            Family::RtMiniapps | Family::BatchMiniapps => "type = 'miniapp_end'".to_string(),
            Family::BatchSessions => "type IN ('session_end', 'miniapp_end')".to_string(),
            Family::BatchDialogs => match dialect {
                Dialect::ClickHouse => "type = 'dialog_end' AND ifNull(root, 1) = 1".to_string(),
                Dialect::DuckDb => "type = 'dialog_end' AND root".to_string(),
            },
        }
    }
}

/// A baseline's rollup of one family: what a database engineer would keep for these
/// dashboards, at our grain (the family's slot) and with our dimensions, one sum column per
/// metric the suite asks of the family. Filled from the deduplicated events in the load step
/// (a materialized view on the raw inserts would count re-sent duplicates twice).
#[derive(Debug, Clone)]
pub struct Rollup {
    pub family: Family,
    pub metrics: Vec<&'static str>,
    /// Real time only: events attributed before this are left out (ours keeps 48 hours).
    pub since: Option<Timestamp>,
}

/// One rollup per family the suite asks, with the union of its metrics.
pub fn rollups(specs: &[QuerySpec]) -> Vec<Rollup> {
    let mut out: Vec<Rollup> = Vec::new();
    for spec in specs {
        let since = (spec.family == Family::RtMiniapps).then_some(spec.start);
        match out.iter_mut().find(|r| r.family == spec.family) {
            Some(r) => {
                for m in &spec.metrics {
                    if !r.metrics.contains(m) {
                        r.metrics.push(m);
                    }
                }
                r.since = match (r.since, since) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            None => out.push(Rollup {
                family: spec.family,
                metrics: spec.metrics.clone(),
                since,
            }),
        }
    }
    out
}

impl Rollup {
    pub fn table(&self) -> &'static str {
        self.family.rollup_table()
    }

    /// The sum columns, in order.
    pub fn columns(&self) -> Vec<String> {
        self.metrics.iter().map(|m| rollup_column(m)).collect()
    }

    /// The rollup's rows from the deduplicated events in `events`: `group`, `slot` (the UTC slot
    /// start), the dimensions, then the sums.
    pub fn select_sql(&self, dialect: Dialect, events: &str) -> String {
        let slot = self.family.slot_seconds();
        let slot_expr = match dialect {
            Dialect::ClickHouse => format!("toDateTime(intDiv(toUInt32(s), {slot}) * {slot})"),
            Dialect::DuckDb => {
                format!("to_timestamp(CAST(floor(epoch(s)) AS BIGINT) // {slot} * {slot})")
            }
        };
        let group = quote(dialect, "group");
        let dims = self.family.raw_dims().join(", ");
        let mut conds = vec![self.family.type_cond(dialect)];
        if let Some(t) = self.since {
            conds.push(match dialect {
                Dialect::ClickHouse => format!("s >= toDateTime({})", t.as_second()),
                Dialect::DuckDb => format!("s >= to_timestamp({})", t.as_second()),
            });
        }
        let sums: Vec<String> = self
            .metrics
            .iter()
            .map(|m| format!("{} AS {}", metric_expr(dialect, m), rollup_column(m)))
            .collect();
        format!(
            "SELECT {group}, {slot_expr} AS slot, {dims}, {} FROM {events} WHERE {} GROUP BY {group}, slot, {dims}",
            sums.join(", "),
            conds.join(" AND ")
        )
    }
}

/// An answer reduced to what must agree: per (metric, split-dimension values), the non-zero
/// values by bucket label (`yyyy-MM-dd HH:mm:ss`).
pub type Norm = BTreeMap<(String, Vec<String>), BTreeMap<String, u64>>;

/// What an ocp-metrics answer says, plus its shape.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AnswerShape {
    pub series: usize,
    pub buckets: usize,
    pub bytes: usize,
}

/// Normalizes an ocp-metrics answer (docs/api.md section 5.4).
pub fn norm_ours(spec: &QuerySpec, body: &[u8]) -> anyhow::Result<(Norm, AnswerShape)> {
    let v: Vec<Value> = serde_json::from_slice(body).with_context(|| {
        format!(
            "{}: the answer is not a JSON array: {}",
            spec.name,
            String::from_utf8_lossy(&body[..body.len().min(300)])
        )
    })?;
    let dims = spec.split_dims();
    let mut norm = Norm::new();
    let mut shape = AnswerShape {
        series: v.len(),
        bytes: body.len(),
        ..AnswerShape::default()
    };
    for s in &v {
        let metric = s["metric"].as_str().context("series without metric")?;
        let tags = &s["tags"];
        let key_dims = dims
            .iter()
            .map(|d| {
                tags[*d]
                    .as_str()
                    .map(String::from)
                    .with_context(|| format!("{}: series without tag {d}", spec.name))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let dps = s["dps"].as_object().context("series without dps")?;
        shape.buckets = shape.buckets.max(dps.len());
        let entry = norm.entry((metric.to_string(), key_dims)).or_default();
        for (label, value) in dps {
            let n = value.as_u64().context("a non-integer value")?;
            if n != 0 {
                let label = label.strip_suffix(".0").unwrap_or(label);
                *entry.entry(label.to_string()).or_default() += n;
            }
        }
    }
    norm.retain(|_, m| !m.is_empty());
    Ok((norm, shape))
}

/// The rows of a SQL answer, each as its text fields: label, split dimensions, then one value
/// per metric.
pub type Rows = Vec<Vec<String>>;

/// Normalizes SQL rows: label, split dimensions, then one value per metric.
pub fn norm_rows(spec: &QuerySpec, rows: &[Vec<String>]) -> anyhow::Result<Norm> {
    let nd = spec.split_dims().len();
    let mut norm = Norm::new();
    for row in rows {
        if row.len() != 1 + nd + spec.metrics.len() {
            bail!("{}: a row of {} columns: {row:?}", spec.name, row.len());
        }
        let dims = row[1..=nd].to_vec();
        for (i, m) in spec.metrics.iter().enumerate() {
            let raw = &row[1 + nd + i];
            let n: u64 = raw
                .parse()
                .or_else(|_| raw.parse::<f64>().map(|f| f as u64))
                .with_context(|| format!("{}: value {raw:?} is not a count", spec.name))?;
            if n != 0 {
                *norm
                    .entry((m.to_string(), dims.clone()))
                    .or_default()
                    .entry(row[0].clone())
                    .or_default() += n;
            }
        }
    }
    Ok(norm)
}

/// Differences between two normalized answers, at most `max` of them, described.
pub fn diff(ours: &Norm, theirs: &Norm, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<_> = ours.keys().chain(theirs.keys()).collect();
    let empty = BTreeMap::new();
    let mut total = 0usize;
    for k in keys {
        let a = ours.get(k).unwrap_or(&empty);
        let b = theirs.get(k).unwrap_or(&empty);
        let labels: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).collect();
        for l in labels {
            let (x, y) = (
                a.get(l).copied().unwrap_or(0),
                b.get(l).copied().unwrap_or(0),
            );
            if x != y {
                total += 1;
                if out.len() < max {
                    out.push(format!("{} {:?} @ {l}: ours {x}, theirs {y}", k.0, k.1));
                }
            }
        }
    }
    if total > out.len() {
        out.push(format!("... {} differences in all", total));
    }
    out
}

/// Adds one to the first value of a normalized answer (to test the check itself).
pub fn perturb(n: &mut Norm) {
    if let Some(v) = n.values_mut().next().and_then(|m| m.values_mut().next()) {
        *v += 1;
    }
}

/// The sum of every value, for a quick sanity line.
pub fn total(n: &Norm) -> u64 {
    n.values().flat_map(|m| m.values()).sum()
}

/// The dashboard query suite with each query's body for the benchmark's group, built once per
/// run (every system under test is sent the same bodies).
pub struct Suite {
    pub specs: Vec<QuerySpec>,
    pub bodies: Vec<String>,
}

impl Suite {
    pub fn new() -> anyhow::Result<Suite> {
        let specs = suite(jiff::Timestamp::now())?;
        let bodies = specs
            .iter()
            .map(|q| q.body(crate::data::GROUP))
            .collect::<anyhow::Result<_>>()?;
        Ok(Suite { specs, bodies })
    }

    pub fn iter(&self) -> impl Iterator<Item = (&QuerySpec, &String)> {
        self.specs.iter().zip(&self.bodies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-25T10:07:00Z".parse().unwrap()
    }

    #[test]
    fn windows_are_inside_the_limits_and_aligned() {
        let s = suite(now()).unwrap();
        let rt = &s[0];
        assert_eq!(rt.end.to_string(), "2026-11-25T10:10:00Z");
        assert!(rt.start > now() - SignedDuration::from_hours(48));
        let day = &s[2];
        // 719 days before 2026-11-25 (Kolkata): 720 daily buckets up to today.
        assert_eq!(
            local_string(day.start, BATCH_ZONE).unwrap(),
            "2024/12/06 00:00:00"
        );
        assert!(day.start > now() - SignedDuration::from_hours(720 * 24));
        assert_eq!(
            local_string(day.end, BATCH_ZONE).unwrap(),
            "2026/11/26 00:00:00"
        );
        let week = &s[4];
        let ws = week.start.to_zoned(TimeZone::get(BATCH_ZONE).unwrap());
        assert_eq!(ws.weekday(), Weekday::Monday);
        assert!(week.start >= day.start);
        assert_eq!(
            local_string(week.end, BATCH_ZONE).unwrap(),
            "2026/11/30 00:00:00"
        );
    }

    #[test]
    fn bodies_and_sql_name_the_same_things() {
        let s = suite(now()).unwrap();
        let f = &s[3];
        let body: Value = serde_json::from_str(&f.body("g").unwrap()).unwrap();
        assert_eq!(body["filters"]["language"][1], "hi-IN");
        assert_eq!(body["timezone"], BATCH_ZONE);
        assert_eq!(body["downsampling"], "day");
        let ch = f.sql(Dialect::ClickHouse, "ev", "g");
        assert!(ch.contains("locale IN ('en-US', 'hi-IN', 'ta-IN')"), "{ch}");
        assert!(ch.contains("toStartOfDay(s, 'Asia/Kolkata')"), "{ch}");
        let dd = s[6].sql(Dialect::DuckDb, "ev", "g");
        assert!(dd.contains("GROUP BY d, miniapp_name, locale"), "{dd}");
        assert!(!dd.contains("ORDER BY"), "{dd}");
        let dialogs = s[5].sql(Dialect::DuckDb, "ev", "g");
        assert!(
            dialogs.contains("type = 'dialog_end' AND root"),
            "{dialogs}"
        );
    }

    #[test]
    fn rollup_queries_read_slots_of_the_family() {
        let s = suite(now()).unwrap();
        let r = rollups(&s);
        assert_eq!(r.len(), 4);
        let rt = &r[0];
        assert_eq!(rt.family, Family::RtMiniapps);
        assert_eq!(rt.since, Some(s[0].start));
        assert_eq!(rt.columns().len(), 3);
        let day = s[2].rollup_sql(Dialect::ClickHouse, "g").unwrap();
        assert!(day.contains("FROM r_batch_miniapps"), "{day}");
        assert!(
            day.contains("toStartOfDay(slot, 'Asia/Kolkata') AS d"),
            "{day}"
        );
        assert!(day.contains("sum(m_errortasks)"), "{day}");
        let rt_sql = s[1].rollup_sql(Dialect::ClickHouse, "g").unwrap();
        assert!(rt_sql.contains("SELECT slot AS d"), "{rt_sql}");
        let fill = r[1].select_sql(Dialect::DuckDb, "ev");
        assert!(fill.contains("// 900 * 900"), "{fill}");
        let mut off = s[2].clone();
        off.start += SignedDuration::from_mins(5);
        assert!(off.rollup_sql(Dialect::DuckDb, "g").is_err());
    }

    #[test]
    fn normalization_and_diff() {
        let s = suite(now()).unwrap();
        let drill = &s[1];
        let ours = br#"[{"metric":"miniapps_invocations","tags":{"group":"g","miniapp_name":"A","locale":"en-US"},"dps":{"2026-11-25 10:00:00.0":2,"2026-11-25 10:05:00.0":0}}]"#;
        let (a, shape) = norm_ours(drill, ours).unwrap();
        assert_eq!((shape.series, shape.buckets), (1, 2));
        let row = |fields: [&str; 4]| vec![fields.map(String::from).to_vec()];
        let b = norm_rows(drill, &row(["2026-11-25 10:00:00", "A", "en-US", "2"])).unwrap();
        assert!(diff(&a, &b, 5).is_empty());
        let c = norm_rows(drill, &row(["2026-11-25 10:05:00", "A", "en-US", "1"])).unwrap();
        assert_eq!(diff(&a, &c, 5).len(), 2);
    }
}
