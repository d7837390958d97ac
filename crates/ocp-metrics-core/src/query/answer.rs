//! Execution: answering a valid [`Query`] over the [`Rollups`], within the answer limits.

use super::{Answer, AnswerSeries, Query, QueryError, err};
use crate::limits::{ANSWER_POINTS_MAX, ANSWER_SERIES_MAX};
use crate::metrics::DIMS_MAX;
use crate::rollup::{DimTuple, FamilyStore, Rollups};
use crate::time::BucketPlan;
use jiff::Timestamp;
use rustc_hash::{FxHashMap, FxHashSet};

/// Marks a dimension that a drilldown key does not project.
const UNPROJECTED: u32 = u32::MAX;

impl Rollups {
    /// Answers a valid query at time `now`.
    pub fn query(&self, q: &Query, now: Timestamp) -> Result<Answer, QueryError> {
        self.query_planned(q, q.plan(now))
    }

    /// Answers a valid query over buckets already planned (by [`Query::plan`]), for a caller
    /// that needed the plan before the rollups were complete.
    pub fn query_planned(&self, q: &Query, plan: BucketPlan) -> Result<Answer, QueryError> {
        let family = q.endpoint.family();
        let store = self.group(q.group.as_str()).map(|g| g.family(family));
        let unfiltered = !q.drilldown && q.filters.iter().all(|f| f.values.is_empty());
        let groups = match store {
            Some(store) if unfiltered => {
                let total = total_group(store, q, &plan);
                debug_assert_total_is_the_sum_of_every_series(store, q, &plan, &total);
                vec![total]
            }
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

/// The running total of a family answers unfiltered queries in one column scan; in debug builds
/// the same answer summed over every series must equal it (the invariant that makes the shortcut
/// correct). Linear in the series, so only in debug builds.
fn debug_assert_total_is_the_sum_of_every_series(
    store: &FamilyStore,
    q: &Query,
    plan: &BucketPlan,
    total: &Acc,
) {
    if cfg!(debug_assertions)
        && let Ok(groups) = collect_groups(store, q, plan)
    {
        let summed = merge_all(groups, q, plan);
        assert_eq!(
            summed.values, total.values,
            "the running total equals the sum of every series"
        );
    }
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
    let mut scratch = Vec::new();
    for acc in &mut accs {
        acc.values = vec![0; q.metrics.len() * plan.labels.len()];
        for &i in &acc.members {
            let column = &store.series()[i as usize].column;
            sum_into(&mut acc.values, column, q, plan, &mut scratch);
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
    sum_into(&mut acc.values, store.total(), q, plan, &mut Vec::new());
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

/// Adds the column's slots in the plan's range to the buckets, one row of buckets per metric.
/// Each metric's counters are read as contiguous runs (see `SlotColumn::for_each_sum`, whose
/// buffer `scratch` is).
fn sum_into(
    values: &mut [u64],
    column: &crate::rollup::SlotColumn,
    q: &Query,
    plan: &BucketPlan,
    scratch: &mut Vec<u64>,
) {
    let buckets = plan.labels.len();
    if buckets == 0 {
        return;
    }
    for (row, m) in values.chunks_exact_mut(buckets).zip(&q.metrics) {
        column.for_each_sum(
            plan.first_slot,
            plan.end_slot(),
            m.columns,
            scratch,
            |slot, v| {
                if let Some(bucket) = row.get_mut(plan.bucket_of(slot) as usize) {
                    *bucket += v;
                }
            },
        );
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
