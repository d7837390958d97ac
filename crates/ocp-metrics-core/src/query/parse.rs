//! Parsing: a [`QueryDraft`] as the client sent it becomes a valid [`Query`], or a
//! [`QueryError`] whose message says how to fix the request.

use super::{Filter, FilterDraft, Query, QueryDraft, QueryError, err};
use crate::domain::GroupName;
use crate::echo::clip;
use crate::limits::{
    BATCH_RETENTION_SECONDS, FILTER_VALUES_MAX, QUERY_METRICS_MAX, QUERY_START_GRACE_SECONDS,
    RT_RETENTION_SECONDS,
};
use crate::metrics::{Endpoint, MetricDef};
use crate::time::{Granularity, parse_query_time};
use jiff::Timestamp;
use jiff::tz::TimeZone;

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
