//! Metric definitions (docs/api.md section 6): the rollup families, their dimensions and counter
//! columns, the endpoints and the metrics each one serves, and the pure function that says what
//! one event adds to which family.
//!
//! A *family* is one rollup table: a set of dimensions and a fixed vector of counter columns per
//! slot. Every metric of an endpoint is the sum of some columns of one family, so a batch class
//! total (`dialogs`, `totalinvocations`) is exactly the sum of its classes by construction.

use crate::event::{Event, EventKind, MiniappResult, Outcome, UnixMs};
use crate::time::{BATCH_SLOT_SECONDS, Granularity, RT_SLOT_SECONDS};

/// The most dimensions any family has.
pub const DIMS_MAX: usize = 7;
/// The most counter columns any family has.
pub const COLUMNS_MAX: usize = 9;

/// One rollup table.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Family {
    RtDialogs,
    RtSessions,
    RtMiniapps,
    RtV2Dialogs,
    BatchDialogs,
    BatchSessions,
    BatchMiniapps,
}

impl Family {
    pub const ALL: [Family; 7] = [
        Family::RtDialogs,
        Family::RtSessions,
        Family::RtMiniapps,
        Family::RtV2Dialogs,
        Family::BatchDialogs,
        Family::BatchSessions,
        Family::BatchMiniapps,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// Dimension names as the API spells them, in canonical order (the order of tags and of
    /// drilldown sorting).
    pub fn dims(self) -> &'static [&'static str] {
        match self {
            Family::RtDialogs => &["flow_name", "locale", "channel", "test_flag", "region"],
            Family::RtSessions => &["channel", "test_flag", "region"],
            Family::RtMiniapps | Family::RtV2Dialogs => &[
                "miniapp_name",
                "miniapp_type",
                "locale",
                "channel",
                "test_flag",
                "region",
            ],
            Family::BatchDialogs => &[
                "miniapp_name",
                "miniapp_type",
                "language",
                "channel",
                "miniapp_id",
                "region",
            ],
            Family::BatchSessions => &["channel", "region"],
            Family::BatchMiniapps => &[
                "miniapp_name",
                "miniapp_type",
                "language",
                "channel",
                "miniapp_id",
                "miniapp_fail_reason",
                "region",
            ],
        }
    }

    /// Number of counter columns per slot: the length of the family's column table.
    pub fn columns(self) -> usize {
        self.column_table().len()
    }

    /// The family's columns in slot order (each entry is its own index).
    fn column_table(self) -> &'static [usize] {
        match self {
            Family::RtDialogs => col::RT_DIALOGS,
            Family::RtSessions => col::RT_SESSIONS,
            Family::RtMiniapps => col::RT_MINIAPPS,
            Family::RtV2Dialogs => col::RT_V2_DIALOGS,
            Family::BatchDialogs => col::BATCH_DIALOGS,
            Family::BatchSessions => col::BATCH_SESSIONS,
            Family::BatchMiniapps => col::BATCH_MINIAPPS,
        }
    }

    pub fn is_realtime(self) -> bool {
        matches!(
            self,
            Family::RtDialogs | Family::RtSessions | Family::RtMiniapps | Family::RtV2Dialogs
        )
    }

    pub fn slot_seconds(self) -> i64 {
        if self.is_realtime() {
            RT_SLOT_SECONDS
        } else {
            BATCH_SLOT_SECONDS
        }
    }

    pub fn dim_index(self, name: &str) -> Option<usize> {
        self.dims().iter().position(|d| *d == name)
    }
}

/// A metric: a name and the family columns it sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    pub name: &'static str,
    pub columns: &'static [usize],
}

const fn m(name: &'static str, columns: &'static [usize]) -> MetricDef {
    MetricDef { name, columns }
}

// Column layouts. Each family's columns are declared once, in slot order: the declaration
// numbers them and makes the family's table, and `Family::columns` is the table's length, so a
// column cannot be numbered twice, skipped, or left out of the count.
mod col {
    /// Declares a family's column table and one constant per column, numbered by its position.
    macro_rules! columns {
        ($table:ident: $($name:ident),+ $(,)?) => {
            pub const $table: &[usize] = &[$($name),+];
            columns!(@number 0; $($name),+);
        };
        (@number $at:expr; $name:ident $(, $rest:ident)*) => {
            pub const $name: usize = $at;
            columns!(@number $at + 1; $($rest),*);
        };
        (@number $at:expr;) => {};
    }

    columns!(RT_DIALOGS: D_COMPLETED, D_TRANSFERRED, D_TERMINATED, D_ERROR_OUTCOME,
        D_AGENT_REQUESTS, D_CRITICAL_ERRORS, D_NO_INPUTS, D_NO_MATCHES);
    columns!(RT_SESSIONS: S_INITIATED);
    columns!(RT_MINIAPPS: M_INVOCATIONS, M_SUCCESS, M_ERROR_RESULT, M_CRITICAL_ERRORS,
        M_AGENT_REQUESTS, M_NO_INPUTS, M_NO_MATCHES);
    columns!(RT_V2_DIALOGS: V2_INVOCATIONS, V2_ERROR_RESULT, V2_CRITICAL_ERRORS, V2_SUCCESS,
        V2_NO_INPUTS, V2_NO_MATCHES, V2_COMPLETED, V2_TRANSFERRED, V2_TERMINATED);
    // The batch dialog and miniApp columns are classes: every event lands in exactly one.
    columns!(BATCH_DIALOGS: BD_ERROR, BD_TRANSFERRED, BD_TERMINATED, BD_OTHER);
    columns!(BATCH_SESSIONS: BS_SESSIONS, BS_DURATION10SEC, BS_INVOCATIONS);
    columns!(BATCH_MINIAPPS: BM_ERROR, BM_SUCCESS, BM_FAIL, BM_HANGUP, BM_DTMF, BM_OTHER);
}
use col::*;

const RT_DIALOGS_V3: &[MetricDef] = &[
    m("root_agent_requests", &[D_AGENT_REQUESTS]),
    m("root_system_errors", &[D_ERROR_OUTCOME]),
    m("root_critical_error", &[D_CRITICAL_ERRORS]),
    m("root_no_inputs", &[D_NO_INPUTS]),
    m("root_no_matches", &[D_NO_MATCHES]),
    m("dialogs_completed", &[D_COMPLETED]),
    m("dialogs_transferred", &[D_TRANSFERRED]),
    m("dialogs_terminated", &[D_TERMINATED]),
];
const RT_SESSIONS: &[MetricDef] = &[m("session.initiated", &[S_INITIATED])];
const RT_MINIAPPS_V3: &[MetricDef] = &[
    m("miniapps_agent_requests", &[M_AGENT_REQUESTS]),
    m("miniapps_invocations", &[M_INVOCATIONS]),
    m("miniapps_system_errors", &[M_ERROR_RESULT]),
    m("miniapps_critical_error", &[M_CRITICAL_ERRORS]),
    m("miniapps_invocations_successful", &[M_SUCCESS]),
    m("miniapps_no_inputs", &[M_NO_INPUTS]),
    m("miniapps_no_matches", &[M_NO_MATCHES]),
];
const RT_DIALOGS_V2: &[MetricDef] = &[
    m("miniapps_invocations", &[V2_INVOCATIONS]),
    m("miniapps_system_errors", &[V2_ERROR_RESULT]),
    m("miniapps_critical_error", &[V2_CRITICAL_ERRORS]),
    m("miniapps_invocations_successful", &[V2_SUCCESS]),
    m("no_inputs", &[V2_NO_INPUTS]),
    m("no_matches", &[V2_NO_MATCHES]),
    m("dialogs_completed", &[V2_COMPLETED]),
    m("dialogs_transferred", &[V2_TRANSFERRED]),
    m("dialogs_terminated", &[V2_TERMINATED]),
];
const BATCH_DIALOGS: &[MetricDef] = &[
    m(
        "dialogs",
        &[BD_ERROR, BD_TRANSFERRED, BD_TERMINATED, BD_OTHER],
    ),
    m("terminated", &[BD_TERMINATED]),
    m("transferred", &[BD_TRANSFERRED]),
    m("error", &[BD_ERROR]),
    m("other", &[BD_OTHER]),
];
const BATCH_SESSIONS: &[MetricDef] = &[
    m("sessions", &[BS_SESSIONS]),
    m("invocations", &[BS_INVOCATIONS]),
    m("duration10sec", &[BS_DURATION10SEC]),
];
const BATCH_MINIAPPS: &[MetricDef] = &[
    m(
        "totalinvocations",
        &[BM_ERROR, BM_SUCCESS, BM_FAIL, BM_HANGUP, BM_DTMF, BM_OTHER],
    ),
    m("successfultasks", &[BM_SUCCESS]),
    m("failedtasks", &[BM_FAIL]),
    m("errortasks", &[BM_ERROR]),
    m("hangeduptasks", &[BM_HANGUP]),
    m("dtmfescapekeytasks", &[BM_DTMF]),
    m("othertasks", &[BM_OTHER]),
];

/// One query endpoint of the public API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    V3RtDialogs,
    V3RtSessions,
    V3RtMiniapps,
    V3BatchDialogs,
    V3BatchSessions,
    V3BatchMiniapps,
    V2RtDialogs,
    V2RtSessions,
    V2BatchDialogs,
    V2BatchSessions,
    V2BatchMiniapps,
}

impl Endpoint {
    pub const ALL: [Endpoint; 11] = [
        Endpoint::V3RtDialogs,
        Endpoint::V3RtSessions,
        Endpoint::V3RtMiniapps,
        Endpoint::V3BatchDialogs,
        Endpoint::V3BatchSessions,
        Endpoint::V3BatchMiniapps,
        Endpoint::V2RtDialogs,
        Endpoint::V2RtSessions,
        Endpoint::V2BatchDialogs,
        Endpoint::V2BatchSessions,
        Endpoint::V2BatchMiniapps,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Endpoint::V3RtDialogs => "/metrics-api/v3/realtime/metrics/dialogs",
            Endpoint::V3RtSessions => "/metrics-api/v3/realtime/metrics/sessions",
            Endpoint::V3RtMiniapps => "/metrics-api/v3/realtime/metrics/miniapps",
            Endpoint::V3BatchDialogs => "/metrics-api/v3/batch/metrics/dialogs",
            Endpoint::V3BatchSessions => "/metrics-api/v3/batch/metrics/sessions",
            Endpoint::V3BatchMiniapps => "/metrics-api/v3/batch/metrics/miniapps",
            Endpoint::V2RtDialogs => "/metrics-api/v2/realtime/metrics/dialogs",
            Endpoint::V2RtSessions => "/metrics-api/v2/realtime/metrics/sessions",
            Endpoint::V2BatchDialogs => "/metrics-api/v2/batch/metrics/dialogs",
            Endpoint::V2BatchSessions => "/metrics-api/v2/batch/metrics/sessions",
            Endpoint::V2BatchMiniapps => "/metrics-api/v2/batch/metrics/miniapps",
        }
    }

    pub fn family(self) -> Family {
        match self {
            Endpoint::V3RtDialogs => Family::RtDialogs,
            Endpoint::V3RtSessions | Endpoint::V2RtSessions => Family::RtSessions,
            Endpoint::V3RtMiniapps => Family::RtMiniapps,
            Endpoint::V2RtDialogs => Family::RtV2Dialogs,
            Endpoint::V3BatchDialogs | Endpoint::V2BatchDialogs => Family::BatchDialogs,
            Endpoint::V3BatchSessions | Endpoint::V2BatchSessions => Family::BatchSessions,
            Endpoint::V3BatchMiniapps | Endpoint::V2BatchMiniapps => Family::BatchMiniapps,
        }
    }

    pub fn metrics(self) -> &'static [MetricDef] {
        match self {
            Endpoint::V3RtDialogs => RT_DIALOGS_V3,
            Endpoint::V3RtSessions | Endpoint::V2RtSessions => RT_SESSIONS,
            Endpoint::V3RtMiniapps => RT_MINIAPPS_V3,
            Endpoint::V2RtDialogs => RT_DIALOGS_V2,
            Endpoint::V3BatchDialogs | Endpoint::V2BatchDialogs => BATCH_DIALOGS,
            Endpoint::V3BatchSessions | Endpoint::V2BatchSessions => BATCH_SESSIONS,
            Endpoint::V3BatchMiniapps | Endpoint::V2BatchMiniapps => BATCH_MINIAPPS,
        }
    }

    /// v2 is deprecated (the public API supports it "until end of Q4 2024"); its answers carry
    /// the `Deprecation` and `Sunset` headers (docs/api.md section 5.5).
    pub fn is_deprecated(self) -> bool {
        matches!(
            self,
            Endpoint::V2RtDialogs
                | Endpoint::V2RtSessions
                | Endpoint::V2BatchDialogs
                | Endpoint::V2BatchSessions
                | Endpoint::V2BatchMiniapps
        )
    }

    pub fn granularities(self) -> &'static [Granularity] {
        if self.family().is_realtime() {
            &[Granularity::FiveMin, Granularity::Hour]
        } else {
            &[
                Granularity::Hour,
                Granularity::Day,
                Granularity::Week,
                Granularity::Month,
                Granularity::Year,
            ]
        }
    }
}

/// What one event adds to one family: the dimension values (in the family's order; unused
/// trailing entries are empty), the instant whose slot it lands in, and the column deltas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contribution<'e> {
    pub family: Family,
    pub dims: [&'e str; DIMS_MAX],
    pub at: UnixMs,
    pub deltas: [u64; COLUMNS_MAX],
}

/// The pure attribution function for everything but real-time sessions (which need the
/// session's span, see `rollup`). Every contribution is a function of this one event alone.
pub fn contributions<'e>(e: &'e Event, mut sink: impl FnMut(Contribution<'e>)) {
    let test = bool_str(e.test);
    let (channel, region) = (e.channel.as_str(), e.region.as_str());
    match &e.kind {
        EventKind::SessionEnd { started_at } => {
            let secs = (e.time - started_at).max(0);
            let duration10 = (secs as u64).div_ceil(10_000);
            let mut d = [0; COLUMNS_MAX];
            d[BS_SESSIONS] = 1;
            d[BS_DURATION10SEC] = duration10;
            sink(contribution(
                Family::BatchSessions,
                &[channel, region],
                *started_at,
                d,
            ));
        }
        EventKind::DialogEnd(de) if de.root => {
            let c = &de.counts;
            let (flow, locale) = (de.flow_name.as_str(), de.locale.as_str());
            let outcome = |o: Outcome| u64::from(de.outcome == o);
            let mut d = [0; COLUMNS_MAX];
            d[D_COMPLETED] = 1;
            d[D_TRANSFERRED] = outcome(Outcome::Transferred);
            d[D_TERMINATED] = outcome(Outcome::Terminated);
            d[D_ERROR_OUTCOME] = outcome(Outcome::Error);
            d[D_AGENT_REQUESTS] = c.agent_requests.into();
            d[D_CRITICAL_ERRORS] = c.critical_errors.into();
            d[D_NO_INPUTS] = c.no_inputs.into();
            d[D_NO_MATCHES] = c.no_matches.into();
            sink(contribution(
                Family::RtDialogs,
                &[flow, locale, channel, test, region],
                de.started_at,
                d,
            ));

            let mut d = [0; COLUMNS_MAX];
            d[V2_COMPLETED] = 1;
            d[V2_TRANSFERRED] = outcome(Outcome::Transferred);
            d[V2_TERMINATED] = outcome(Outcome::Terminated);
            let v2_dims = [flow, de.flow_type.as_str(), locale, channel, test, region];
            sink(contribution(
                Family::RtV2Dialogs,
                &v2_dims,
                de.started_at,
                d,
            ));

            let mut d = [0; COLUMNS_MAX];
            d[batch_dialog_class(de.outcome, c.has_errors())] = 1;
            let batch_dims = [
                flow,
                de.flow_type.as_str(),
                locale,
                channel,
                de.flow_id.as_str(),
                region,
            ];
            sink(contribution(
                Family::BatchDialogs,
                &batch_dims,
                de.started_at,
                d,
            ));
        }
        EventKind::MiniappEnd(me) => {
            let c = &me.counts;
            let (name, kind, locale) = (
                me.miniapp_name.as_str(),
                me.miniapp_type.as_str(),
                me.locale.as_str(),
            );
            let success = u64::from(me.result == MiniappResult::Success);
            let error = u64::from(me.result == MiniappResult::Error);
            let mut d = [0; COLUMNS_MAX];
            d[M_INVOCATIONS] = 1;
            d[M_SUCCESS] = success;
            d[M_ERROR_RESULT] = error;
            d[M_CRITICAL_ERRORS] = c.critical_errors.into();
            d[M_AGENT_REQUESTS] = c.agent_requests.into();
            d[M_NO_INPUTS] = c.no_inputs.into();
            d[M_NO_MATCHES] = c.no_matches.into();
            let rt_dims = [name, kind, locale, channel, test, region];
            sink(contribution(Family::RtMiniapps, &rt_dims, me.started_at, d));

            let mut d = [0; COLUMNS_MAX];
            d[V2_INVOCATIONS] = 1;
            d[V2_ERROR_RESULT] = error;
            d[V2_CRITICAL_ERRORS] = c.critical_errors.into();
            d[V2_SUCCESS] = success;
            d[V2_NO_INPUTS] = c.no_inputs.into();
            d[V2_NO_MATCHES] = c.no_matches.into();
            sink(contribution(
                Family::RtV2Dialogs,
                &rt_dims,
                me.started_at,
                d,
            ));

            let mut d = [0; COLUMNS_MAX];
            d[batch_miniapp_class(me.result, c.has_errors())] = 1;
            let batch_dims = [
                name,
                kind,
                locale,
                channel,
                me.miniapp_id.as_str(),
                me.fail_reason.as_str(),
                region,
            ];
            sink(contribution(
                Family::BatchMiniapps,
                &batch_dims,
                me.started_at,
                d,
            ));

            let mut d = [0; COLUMNS_MAX];
            d[BS_INVOCATIONS] = 1;
            sink(contribution(
                Family::BatchSessions,
                &[channel, region],
                me.started_at,
                d,
            ));
        }
        EventKind::SessionStart
        | EventKind::DialogStart
        | EventKind::MiniappStart
        | EventKind::DialogEnd(_) => {}
    }
}

/// The real-time session dimensions of an event, in `Family::RtSessions` order.
pub fn session_dims(e: &Event) -> [&str; 3] {
    [e.channel.as_str(), bool_str(e.test), e.region.as_str()]
}

/// Batch dialog class, first match wins: error, transferred, terminated, other.
fn batch_dialog_class(outcome: Outcome, has_errors: bool) -> usize {
    if outcome == Outcome::Error || has_errors {
        return BD_ERROR;
    }
    match outcome {
        Outcome::Transferred => BD_TRANSFERRED,
        Outcome::Terminated => BD_TERMINATED,
        Outcome::Error | Outcome::Other => BD_OTHER,
    }
}

/// Batch miniApp class, first match wins: error, success, fail, hangup, dtmf escape, other.
fn batch_miniapp_class(result: MiniappResult, has_errors: bool) -> usize {
    if result == MiniappResult::Error || has_errors {
        return BM_ERROR;
    }
    match result {
        MiniappResult::Success => BM_SUCCESS,
        MiniappResult::Fail => BM_FAIL,
        MiniappResult::Hangup => BM_HANGUP,
        MiniappResult::DtmfEscape => BM_DTMF,
        MiniappResult::Error | MiniappResult::Other => BM_OTHER,
    }
}

fn contribution<'e>(
    family: Family,
    dims: &[&'e str],
    at: UnixMs,
    deltas: [u64; COLUMNS_MAX],
) -> Contribution<'e> {
    debug_assert!(
        deltas[family.columns()..].iter().all(|&d| d == 0),
        "{family:?} has no column past its {}",
        family.columns()
    );
    debug_assert!(
        !matches!(family, Family::BatchDialogs | Family::BatchMiniapps)
            || deltas.iter().sum::<u64>() == 1,
        "an event lands in exactly one batch class, so the classes sum to the total"
    );
    let mut all = [""; DIMS_MAX];
    all[..dims.len()].copy_from_slice(dims);
    Contribution {
        family,
        dims: all,
        at,
        deltas,
    }
}

pub fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::ev;

    #[test]
    fn column_tables_number_their_columns_in_slot_order() {
        for family in Family::ALL {
            let table = family.column_table();
            assert_eq!(family.columns(), table.len(), "{family:?}");
            for (slot, column) in table.iter().enumerate() {
                assert_eq!(*column, slot, "{family:?} column {slot}");
            }
        }
        let widest = Family::ALL.iter().map(|f| f.columns()).max();
        assert_eq!(widest, Some(COLUMNS_MAX));
    }

    #[test]
    fn every_column_is_read_by_some_metric_and_no_metric_reads_past_its_family() {
        for family in Family::ALL {
            let mut read = vec![false; family.columns()];
            let endpoints = Endpoint::ALL.into_iter().filter(|e| e.family() == family);
            for metric in endpoints.flat_map(|e| e.metrics()) {
                for &column in metric.columns {
                    assert!(column < family.columns(), "{family:?} {}", metric.name);
                    read[column] = true;
                }
            }
            assert_eq!(read, vec![true; family.columns()], "{family:?}");
        }
    }

    #[test]
    fn batch_totals_are_the_sum_of_their_classes() {
        for (endpoint, total) in [
            (Endpoint::V3BatchDialogs, "dialogs"),
            (Endpoint::V3BatchMiniapps, "totalinvocations"),
        ] {
            let metrics = endpoint.metrics();
            let all: Vec<usize> = (0..endpoint.family().columns()).collect();
            let total_columns = metrics.iter().find(|m| m.name == total).unwrap().columns;
            assert_eq!(total_columns, all, "{total}");
            let mut classes: Vec<usize> = metrics
                .iter()
                .filter(|m| m.name != total)
                .flat_map(|m| m.columns.iter().copied())
                .collect();
            classes.sort_unstable();
            assert_eq!(classes, all, "the classes of {total} read each column once");
        }
    }

    #[test]
    fn contributions_write_only_the_columns_of_their_family() {
        let events = [
            ev(&[("type", "session_end"), ("started_at", "10:00")]),
            ev(&[("type", "dialog_end"), ("root", "true"), ("no_inputs", "3")]),
            ev(&[
                ("type", "dialog_end"),
                ("root", "true"),
                ("outcome", "error"),
            ]),
            ev(&[
                ("type", "miniapp_end"),
                ("agent_requests", "2"),
                ("no_matches", "1"),
            ]),
            ev(&[("type", "miniapp_end"), ("result", "dtmf_escape")]),
        ];
        let mut seen = Vec::new();
        for e in &events {
            contributions(e, |c| {
                assert_eq!(
                    c.deltas[c.family.columns()..],
                    [0; COLUMNS_MAX][c.family.columns()..]
                );
                seen.push(c.family);
            });
        }
        seen.sort();
        seen.dedup();
        let written: Vec<_> = Family::ALL
            .into_iter()
            .filter(|f| *f != Family::RtSessions)
            .collect();
        assert_eq!(
            seen, written,
            "every family but real-time sessions gets a contribution"
        );
    }
}
