//! Queries (docs/api.md section 5): [`Query::parse`] turns a [`QueryDraft`] into a valid query
//! or a [`QueryError`] that says how to fix it (in `parse`); [`crate::Rollups::query`] answers it
//! over the rollups (in `answer`). This file holds the types the two share.

use crate::domain::GroupName;
use crate::metrics::{Endpoint, MetricDef};
use crate::time::Granularity;
use jiff::Timestamp;
use jiff::tz::TimeZone;

mod answer;
mod parse;

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

impl Query {
    /// The answer's buckets at time `now`: which slot of the family falls in which bucket.
    pub fn plan(&self, now: Timestamp) -> crate::time::BucketPlan {
        crate::time::BucketPlan::new(
            self.start,
            self.end,
            now,
            &self.timezone,
            self.granularity,
            self.endpoint.family().slot_seconds(),
        )
    }
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
