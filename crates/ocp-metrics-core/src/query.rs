//! Queries (docs/api.md section 5): [`Query::parse`] turns a [`QueryDraft`] into a valid query
//! or a [`QueryError`] that says how to fix it; [`Rollups::query`] answers it.

use crate::domain::GroupName;
use crate::echo::clip;
use crate::limits::{
    ANSWER_POINTS_MAX, ANSWER_SERIES_MAX, BATCH_RETENTION_SECONDS, FILTER_VALUES_MAX,
    QUERY_METRICS_MAX, QUERY_START_GRACE_SECONDS, RT_RETENTION_SECONDS,
};
use crate::metrics::{DIMS_MAX, Endpoint, MetricDef};
use crate::rollup::{DimTuple, FamilyStore, Rollups};
use crate::time::{BucketPlan, Granularity, parse_query_time};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use rustc_hash::{FxHashMap, FxHashSet};

/// A query as the client sent it, every field optional. The HTTP layer fills it from JSON and
/// reports mistyped fields itself.
#[derive(Debug, Default, Clone)]
pub struct QueryDraft {
    pub metrics: Option<Vec<String>>,
    pub filters: Option<Vec<(String, FilterDraft)>>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub group: Option<String>,
    pub downsampling: Option<String>,
    pub drilldown: Option<bool>,
    pub timezone: Option<String>,
}

/// One filter value as sent: an array of strings, or a boolean for `test_flag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterDraft {
    Values(Vec<String>),
    Bool(bool),
}

/// Why a query was refused (a 400). The message is for the user and says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError(msg.into()))
}

/// A valid query.
#[derive(Debug, Clone)]
pub struct Query {
    pub endpoint: Endpoint,
    pub metrics: Vec<MetricDef>,
    /// Filters in the family's canonical dimension order.
    pub filters: Vec<Filter>,
    pub start: Timestamp,
    pub end: Timestamp,
    pub group: GroupName,
    pub granularity: Granularity,
    pub drilldown: bool,
    pub timezone: TimeZone,
}

/// A filter on one dimension: the values to match, any of them; empty matches every value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub dim: usize,
    pub values: Vec<String>,
}

/// An answer: bucket labels shared by all series, and the series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub labels: Vec<String>,
    pub series: Vec<AnswerSeries>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerSeries {
    pub metric: &'static str,
    /// `group` first, then dimensions in canonical order.
    pub tags: Vec<(&'static str, String)>,
    /// One value per label.
    pub values: Vec<u64>,
}

impl Query {
    pub fn parse(endpoint: Endpoint, d: QueryDraft, now: Timestamp) -> Result<Query, QueryError> {
        let metrics = parse_metrics(endpoint, d.metrics)?;
        let filters = parse_filters(endpoint, d.filters.unwrap_or_default())?;
        let timezone = parse_timezone(d.timezone.as_deref())?;
        let start = parse_time("start", d.start.as_deref(), &timezone)?;
        let end = parse_time("end", d.end.as_deref(), &timezone)?;
        if end <= start {
            return err("`end` must be after `start`; swap them or widen the range");
        }
        check_start(endpoint, start, now)?;
        let group = match d.group.as_deref() {
            None => {
                return err(
                    "`group` is required: name the OCP group (organization) whose metrics you want",
                );
            }
            Some(g) => GroupName::parse(g).map_err(|e| QueryError(format!("`group` {e}")))?,
        };
        let granularity = parse_granularity(endpoint, d.downsampling.as_deref())?;
        Ok(Query {
            endpoint,
            metrics,
            filters,
            start,
            end,
            group,
            granularity,
            drilldown: d.drilldown.unwrap_or(false),
            timezone,
        })
    }
}

fn parse_metrics(
    endpoint: Endpoint,
    metrics: Option<Vec<String>>,
) -> Result<Vec<MetricDef>, QueryError> {
    let names = || {
        endpoint
            .metrics()
            .iter()
            .map(|m| m.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let metrics = match metrics {
        Some(m) if !m.is_empty() => m,
        _ => {
            return err(format!(
                "`metrics` must be a non-empty array of metric names; this endpoint serves: {}",
                names()
            ));
        }
    };
    if metrics.len() > QUERY_METRICS_MAX {
        return err(format!(
            "`metrics` lists {} names; at most {QUERY_METRICS_MAX} are allowed",
            metrics.len()
        ));
    }
    metrics
        .iter()
        .map(|name| {
            endpoint
                .metrics()
                .iter()
                .find(|m| m.name == name)
                .copied()
                .ok_or_else(|| {
                    QueryError(format!(
                        "unknown metric `{}` for {}; this endpoint serves: {}",
                        clip(name),
                        endpoint.path(),
                        names()
                    ))
                })
        })
        .collect()
}

fn parse_filters(
    endpoint: Endpoint,
    filters: Vec<(String, FilterDraft)>,
) -> Result<Vec<Filter>, QueryError> {
    let family = endpoint.family();
    let supported = || family.dims().join(", ");
    let mut out: Vec<Filter> = Vec::with_capacity(filters.len());
    for (key, value) in filters {
        let Some(dim) = family.dim_index(&key) else {
            return err(format!(
                "filter `{}` is not supported by {}; supported filters: {}",
                clip(&key),
                endpoint.path(),
                supported()
            ));
        };
        if out.iter().any(|f| f.dim == dim) {
            return err(format!("filter `{key}` is given twice; give it once"));
        }
        let values = match (key.as_str(), value) {
            ("test_flag", FilterDraft::Bool(b)) => vec![b.to_string()],
            ("test_flag", FilterDraft::Values(_)) => {
                return err("filter `test_flag` takes a boolean, e.g. \"test_flag\": false");
            }
            (_, FilterDraft::Bool(_)) => {
                return err(format!(
                    "filter `{key}` takes an array of strings, e.g. \"{key}\": [\"value\"]"
                ));
            }
            (_, FilterDraft::Values(v)) => v,
        };
        if values.len() > FILTER_VALUES_MAX {
            return err(format!(
                "filter `{key}` lists {} values; at most {FILTER_VALUES_MAX} are allowed",
                values.len()
            ));
        }
        out.push(Filter { dim, values });
    }
    out.sort_by_key(|f| f.dim);
    Ok(out)
}

fn parse_timezone(tz: Option<&str>) -> Result<TimeZone, QueryError> {
    match tz {
        None => Ok(TimeZone::UTC),
        Some(name) => TimeZone::get(name).map_err(|_| {
            QueryError(format!(
                "`timezone` `{}` is not an IANA time zone name; use one like UTC, Europe/Athens or Asia/Kolkata",
                clip(name)
            ))
        }),
    }
}

fn parse_time(field: &str, value: Option<&str>, tz: &TimeZone) -> Result<Timestamp, QueryError> {
    let Some(s) = value else {
        return err(format!(
            "`{field}` is required, formatted yyyy/MM/dd HH:mm:ss, e.g. 2024/03/27 12:00:00"
        ));
    };
    parse_query_time(s, tz).ok_or_else(|| {
        QueryError(format!(
            "`{field}` `{}` is not a valid date of the form yyyy/MM/dd HH:mm:ss or yyyy/MM/dd HH:mm:ss.SSS (years 0001 to 9998), e.g. 2024/03/27 12:00:00",
            clip(s)
        ))
    })
}

fn check_start(endpoint: Endpoint, start: Timestamp, now: Timestamp) -> Result<(), QueryError> {
    let (retention, what) = if endpoint.family().is_realtime() {
        (
            RT_RETENTION_SECONDS,
            "real-time metrics are kept for 48 hours; use the batch endpoints for older data",
        )
    } else {
        (
            BATCH_RETENTION_SECONDS,
            "batch metrics are kept for 720 days",
        )
    };
    if start.as_second() < now.as_second() - retention - QUERY_START_GRACE_SECONDS {
        return err(format!(
            "`start` is too far in the past: {what}; move `start` later"
        ));
    }
    Ok(())
}

fn parse_granularity(endpoint: Endpoint, s: Option<&str>) -> Result<Granularity, QueryError> {
    let allowed = endpoint.granularities();
    let Some(s) = s else { return Ok(allowed[0]) };
    match Granularity::parse(s) {
        Some(g) if allowed.contains(&g) => Ok(g),
        _ => err(format!(
            "`downsampling` `{}` is not valid for {}; use one of {}",
            clip(s),
            endpoint.path(),
            allowed
                .iter()
                .map(|g| g.name())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Marks a dimension that a drilldown key does not project.
const UNPROJECTED: u32 = u32::MAX;

impl Rollups {
    /// Answers a valid query at time `now`.
    pub fn query(&self, q: &Query, now: Timestamp) -> Result<Answer, QueryError> {
        let family = q.endpoint.family();
        let plan = BucketPlan::new(
            q.start,
            q.end,
            now,
            &q.timezone,
            q.granularity,
            family.slot_seconds(),
        );
        let store = self.group(q.group.as_str()).map(|g| g.family(family));
        let unfiltered = !q.drilldown && q.filters.iter().all(|f| f.values.is_empty());
        let groups = match store {
            Some(store) if unfiltered => vec![total_group(store, q, &plan)],
            Some(store) => collect_groups(store, q, &plan)?,
            None => Vec::new(),
        };
        let mut groups = if q.drilldown {
            groups
        } else {
            vec![merge_all(groups, q, &plan)]
        };
        if let Some(store) = store {
            groups.sort_by_cached_key(|g| tag_values(store, q, &g.key));
        }
        Ok(render(store, q, plan.labels, groups))
    }
}

/// The accumulated values of one answer series group: one row of buckets per metric.
struct Acc {
    key: DimTuple,
    members: Vec<u32>,
    values: Vec<u64>,
}

/// Finds the series that match the filters and have data in range, grouped by their projection
/// onto the filter dimensions, checks the answer limits, then sums their slots into buckets.
fn collect_groups(
    store: &FamilyStore,
    q: &Query,
    plan: &BucketPlan,
) -> Result<Vec<Acc>, QueryError> {
    let allowed = resolve_filters(store, q);
    let Some(allowed) = allowed else {
        return Ok(Vec::new());
    };
    let (lo, hi) = (plan.first_slot, plan.end_slot());
    let mut by_key: FxHashMap<DimTuple, usize> = FxHashMap::default();
    let mut accs: Vec<Acc> = Vec::new();
    for (i, s) in store.series().iter().enumerate() {
        let matches = allowed.iter().all(|(dim, ids)| ids.contains(&s.dims[*dim]));
        if !matches || !s.column.any_in(lo, hi) {
            continue;
        }
        let key = project(&s.dims, q);
        let n = *by_key.entry(key).or_insert_with(|| {
            accs.push(Acc {
                key,
                members: Vec::new(),
                values: Vec::new(),
            });
            accs.len() - 1
        });
        accs[n].members.push(i as u32);
    }
    check_limits(if q.drilldown { accs.len() } else { 1 }, q, plan)?;
    for acc in &mut accs {
        acc.values = vec![0; q.metrics.len() * plan.labels.len()];
        for &i in &acc.members {
            sum_into(&mut acc.values, &store.series()[i as usize].column, q, plan);
        }
    }
    Ok(accs)
}

/// Everything in the family, read from its running total.
fn total_group(store: &FamilyStore, q: &Query, plan: &BucketPlan) -> Acc {
    let mut acc = Acc {
        key: [UNPROJECTED; DIMS_MAX],
        members: Vec::new(),
        values: vec![0; q.metrics.len() * plan.labels.len()],
    };
    sum_into(&mut acc.values, store.total(), q, plan);
    acc
}

/// For each filter with values, the interned ids it admits; `None` when some filter admits
/// nothing (no series can match).
fn resolve_filters(store: &FamilyStore, q: &Query) -> Option<Vec<(usize, FxHashSet<u32>)>> {
    let mut out = Vec::new();
    for f in q.filters.iter().filter(|f| !f.values.is_empty()) {
        let interner = store.interner(f.dim);
        let ids: FxHashSet<u32> = f.values.iter().filter_map(|v| interner.get(v)).collect();
        if ids.is_empty() {
            return None;
        }
        out.push((f.dim, ids));
    }
    Some(out)
}

fn project(dims: &DimTuple, q: &Query) -> DimTuple {
    let mut key = [UNPROJECTED; DIMS_MAX];
    if q.drilldown {
        for f in &q.filters {
            key[f.dim] = dims[f.dim];
        }
    }
    key
}

fn check_limits(groups: usize, q: &Query, plan: &BucketPlan) -> Result<(), QueryError> {
    let series = groups * q.metrics.len();
    if series > ANSWER_SERIES_MAX {
        return err(format!(
            "the answer would have {series} series; the limit is {ANSWER_SERIES_MAX}: narrow the filters, request fewer metrics, or set drilldown to false"
        ));
    }
    let points = series * plan.labels.len();
    if points > ANSWER_POINTS_MAX {
        return err(format!(
            "the answer would have {points} data points; the limit is {ANSWER_POINTS_MAX}: use a coarser downsampling, a shorter range, or fewer series"
        ));
    }
    Ok(())
}

fn sum_into(values: &mut [u64], column: &crate::rollup::SlotColumn, q: &Query, plan: &BucketPlan) {
    let buckets = plan.labels.len();
    for (slot, counters) in column.range(plan.first_slot, plan.end_slot()) {
        let b = plan.bucket_of(slot) as usize;
        if b >= buckets {
            continue;
        }
        for (mi, m) in q.metrics.iter().enumerate() {
            let v: u64 = m.columns.iter().map(|&c| counters[c]).sum();
            values[mi * buckets + b] += v;
        }
    }
}

/// drilldown false: one group holding everything that matched (zeros when nothing did).
fn merge_all(groups: Vec<Acc>, q: &Query, plan: &BucketPlan) -> Acc {
    let mut all = Acc {
        key: [UNPROJECTED; DIMS_MAX],
        members: Vec::new(),
        values: vec![0; q.metrics.len() * plan.labels.len()],
    };
    for g in groups {
        for (a, b) in all.values.iter_mut().zip(g.values) {
            *a += b;
        }
    }
    all
}

fn tag_values(store: &FamilyStore, q: &Query, key: &DimTuple) -> Vec<String> {
    q.filters
        .iter()
        .filter(|f| key[f.dim] != UNPROJECTED)
        .map(|f| store.interner(f.dim).value(key[f.dim]).to_string())
        .collect()
}

fn render(store: Option<&FamilyStore>, q: &Query, labels: Vec<String>, groups: Vec<Acc>) -> Answer {
    let dims = q.endpoint.family().dims();
    let buckets = labels.len();
    let mut series = Vec::with_capacity(q.metrics.len() * groups.len());
    for (mi, m) in q.metrics.iter().enumerate() {
        for g in &groups {
            let mut tags = vec![("group", q.group.as_str().to_string())];
            for f in &q.filters {
                let value = if q.drilldown {
                    store.map(|s| s.interner(f.dim).value(g.key[f.dim]).to_string())
                } else if f.values.len() == 1 {
                    Some(f.values[0].clone())
                } else {
                    None
                };
                if let Some(v) = value {
                    tags.push((dims[f.dim], v));
                }
            }
            let values = g.values[mi * buckets..(mi + 1) * buckets].to_vec();
            series.push(AnswerSeries {
                metric: m.name,
                tags,
                values,
            });
        }
    }
    Answer { labels, series }
}
