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
    fn column(&self, dim: &str) -> &'static str {
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
        use Dialect::*;
        let q = |col: &str| match dialect {
            ClickHouse => format!("`{col}`"),
            DuckDb => format!("\"{col}\""),
        };
        let tz = self.tz;
        let label = match (dialect, self.gran) {
            (ClickHouse, Gran::FiveMin) => {
                format!("toString(toStartOfFiveMinute(s, '{tz}'), '{tz}')")
            }
            (ClickHouse, Gran::Day) => format!("toString(toStartOfDay(s, '{tz}'), '{tz}')"),
            (ClickHouse, Gran::Week) => {
                format!("concat(toString(toMonday(s, '{tz}')), ' 00:00:00')")
            }
            (DuckDb, g) => {
                let local = format!("timezone('{tz}', s)");
                let trunc = match g {
                    Gran::FiveMin => format!("time_bucket(INTERVAL '5 minutes', {local})"),
                    Gran::Day => format!("date_trunc('day', {local})"),
                    Gran::Week => format!("date_trunc('week', {local})"),
                };
                format!("strftime({trunc}, '%Y-%m-%d %H:%M:%S')")
            }
        };
        let count_if = |cond: &str| match dialect {
            ClickHouse => format!("countIf({cond})"),
            DuckDb => format!("count(*) FILTER (WHERE {cond})"),
        };
        let count = || match dialect {
            ClickHouse => "count()".to_string(),
            DuckDb => "count(*)".to_string(),
        };
        let errs = "system_errors + critical_errors";
        let metric = |m: &str| -> String {
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
        };
        let mut conds = vec![format!("{} = '{group}'", q("group"))];
        conds.push(match self.family {
            Family::RtMiniapps | Family::BatchMiniapps => "type = 'miniapp_end'".to_string(),
            Family::BatchSessions => "type IN ('session_end', 'miniapp_end')".to_string(),
            Family::BatchDialogs => match dialect {
                ClickHouse => "type = 'dialog_end' AND ifNull(root, 1) = 1".to_string(),
                DuckDb => "type = 'dialog_end' AND root".to_string(),
            },
        });
        for (dim, values) in &self.filters {
            if !values.is_empty() {
                let list: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
                conds.push(format!("{} IN ({})", self.column(dim), list.join(", ")));
            }
        }
        let (a, b) = (self.start.as_second(), self.end.as_second());
        conds.push(match dialect {
            ClickHouse => format!("s >= toDateTime({a}) AND s < toDateTime({b})"),
            DuckDb => format!("s >= to_timestamp({a}) AND s < to_timestamp({b})"),
        });
        let dims: Vec<String> = self
            .split_dims()
            .iter()
            .map(|d| self.column(d).to_string())
            .collect();
        let mut select = vec![format!("{label} AS b")];
        select.extend(dims.iter().cloned());
        select.extend(
            self.metrics
                .iter()
                .enumerate()
                .map(|(i, m)| format!("{} AS m{i}", metric(m))),
        );
        let mut group_by = vec!["b".to_string()];
        group_by.extend(dims.iter().cloned());
        format!(
            "SELECT {} FROM {table} WHERE {} GROUP BY {} ORDER BY {}",
            select.join(", "),
            conds.join(" AND "),
            group_by.join(", "),
            group_by.join(", ")
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
        assert!(dd.contains("GROUP BY b, miniapp_name, locale"), "{dd}");
        let dialogs = s[5].sql(Dialect::DuckDb, "ev", "g");
        assert!(
            dialogs.contains("type = 'dialog_end' AND root"),
            "{dialogs}"
        );
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
