//! Admission: the bounds on how much state one group may grow, checked for each event BEFORE it
//! is logged, so that [`Rollups::apply`] stays infallible and a refused event is never durable.
//! Replay applies what the log holds without these checks: a bound lowered between runs never
//! refuses what was acknowledged.
//!
//! Three bounds (docs/api.md section 12: a limit is a message, never a silent drop):
//! - distinct values per dimension, per family, per group ([`DIMENSION_VALUES_MAX`]);
//! - series (tuples of dimension values) per group, over all families ([`SERIES_PER_GROUP_MAX`]);
//! - real-time session spans tracked per group ([`RT_SESSIONS_PER_GROUP_MAX`]).
//!
//! The check mirrors `apply` exactly: contributions whose slot is behind the retention horizon
//! intern nothing and are not counted, and only events inside the real-time window start a
//! session span. Values, series and sessions added by events admitted earlier in the same commit
//! are tracked in an [`Admission`], so a commit as a whole stays within the bounds.

use super::{FamilyStore, GroupState, Horizons, Rollups, known_instants};
use crate::echo::clip;
use crate::event::Event;
use crate::limits::{DIMENSION_VALUES_MAX, RT_SESSIONS_PER_GROUP_MAX, SERIES_PER_GROUP_MAX};
use crate::metrics::{DIMS_MAX, Family, contributions, session_dims};
use crate::time::{RT_SLOT_SECONDS, slot_of};
use rustc_hash::{FxHashMap, FxHashSet};

/// Bounds on the state of one group. The defaults are the named constants of `limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLimits {
    /// Most distinct values of one dimension of one family in one group.
    pub dimension_values_max: usize,
    /// Most real-time session spans tracked in one group.
    pub rt_sessions_per_group_max: usize,
    /// Most series (over all families) held in one group.
    pub series_per_group_max: usize,
}

impl Default for StateLimits {
    fn default() -> Self {
        StateLimits {
            dimension_values_max: DIMENSION_VALUES_MAX,
            rt_sessions_per_group_max: RT_SESSIONS_PER_GROUP_MAX,
            series_per_group_max: SERIES_PER_GROUP_MAX,
        }
    }
}

/// Why an event was refused by a state bound. The message names the dimension (or
/// `session_id`) and says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error(
        "`{dimension}`: group `{group}` already has {max} distinct values of the {family} dimension `{dimension}` (the limit), and this event would add `{value}`; dimension values must come from a small set (names, types, locales, channels), not ids: fix the producer, or ask the operator to raise --dimension-values-max"
    )]
    DimensionValues {
        group: String,
        family: &'static str,
        dimension: &'static str,
        value: String,
        max: usize,
    },
    #[error(
        "`session_id`: group `{group}` already tracks {max} real-time sessions (the limit), and this event would start one more; sessions are forgotten 49 hours after their last event: slow down, check that session ids are reused across a session's events, or ask the operator to raise --rt-sessions-per-group-max"
    )]
    RtSessions { group: String, max: usize },
    #[error(
        "`{first_dimension}`: group `{group}` already holds {max} series (distinct combinations of dimension values, over all families; the limit), and this event would start another in {family}: {series}; dimension values must come from small sets (names, types, locales, channels), not ids, and their combinations stay few: fix the producer, or ask the operator to raise --series-per-group-max"
    )]
    Series {
        group: String,
        family: &'static str,
        /// The family's first dimension, so that the message starts like the others.
        first_dimension: &'static str,
        /// The new tuple, as `dimension=`value`` pairs.
        series: String,
        max: usize,
    },
}

/// What the events admitted so far in one group commit will add, per group.
#[derive(Debug, Default)]
pub struct Admission {
    groups: FxHashMap<Box<str>, Pending>,
}

/// New values per (family, dimension), new series and new session keys of one group.
#[derive(Debug, Default)]
struct Pending {
    values: FxHashMap<(Family, usize), FxHashSet<Box<str>>>,
    /// [`series_key`]s of the new series.
    series: FxHashSet<u128>,
    sessions: FxHashSet<u128>,
}

impl Admission {
    pub fn new() -> Admission {
        Admission::default()
    }

    fn pending(&self, group: &str) -> Option<&Pending> {
        self.groups.get(group)
    }
}

impl Pending {
    fn values(&self, family: Family, dim: usize) -> Option<&FxHashSet<Box<str>>> {
        self.values.get(&(family, dim))
    }
}

/// A family name for messages.
fn family_name(f: Family) -> &'static str {
    match f {
        Family::RtDialogs => "real-time dialogs",
        Family::RtSessions => "real-time sessions",
        Family::RtMiniapps => "real-time miniapps",
        Family::RtV2Dialogs => "real-time v2 dialogs",
        Family::BatchDialogs => "batch dialogs",
        Family::BatchSessions => "batch sessions",
        Family::BatchMiniapps => "batch miniapps",
    }
}

impl Rollups {
    /// Checks that applying `e` at horizons `h` (after everything already admitted into `adm`)
    /// keeps the group within `limits`; on `Ok` records what it adds in `adm`. On `Err` nothing
    /// is recorded and the event must not be logged nor applied.
    pub fn admit(
        &self,
        e: &Event,
        h: Horizons,
        limits: &StateLimits,
        adm: &mut Admission,
    ) -> Result<(), LimitError> {
        let group_name = e.group.as_str();
        let group = self.groups.get(group_name);
        let pending = adm.pending(group_name);
        // Values this event would intern, and series it would start, that neither the state
        // nor the commit has yet.
        let mut new_values: Vec<(Family, usize, &str)> = Vec::new();
        let mut new_series: Vec<(Family, u128, [&str; DIMS_MAX])> = Vec::new();
        contributions(e, |c| {
            if slot_of(c.at, c.family.slot_seconds()) >= h.of(c.family) {
                unknown_values(group, pending, c.family, &c.dims, &mut new_values);
                unknown_series(group, pending, c.family, c.dims, &mut new_series);
            }
        });
        let new_session = new_session_key(group, e, h)
            .filter(|key| !pending.is_some_and(|p| p.sessions.contains(key)));
        let mut session_tuple = [""; DIMS_MAX];
        session_tuple[..3].copy_from_slice(&session_dims(e));
        if new_session.is_some() {
            unknown_values(
                group,
                pending,
                Family::RtSessions,
                &session_tuple,
                &mut new_values,
            );
        }
        if new_session.is_some() {
            unknown_series(
                group,
                pending,
                Family::RtSessions,
                session_tuple,
                &mut new_series,
            );
        }

        for &(family, dim, value) in &new_values {
            let current = group.map_or(0, |g| g.family(family).interner(dim).len())
                + pending
                    .and_then(|p| p.values(family, dim))
                    .map_or(0, FxHashSet::len);
            if current >= limits.dimension_values_max {
                return Err(LimitError::DimensionValues {
                    group: group_name.to_string(),
                    family: family_name(family),
                    dimension: family.dims()[dim],
                    value: clip(value).to_string(),
                    max: limits.dimension_values_max,
                });
            }
        }
        if let Some(&(family, _, tuple)) = new_series.first() {
            let current =
                group.map_or(0, GroupState::series_count) + pending.map_or(0, |p| p.series.len());
            if current + new_series.len() > limits.series_per_group_max {
                return Err(LimitError::Series {
                    group: group_name.to_string(),
                    family: family_name(family),
                    first_dimension: family.dims()[0],
                    series: describe(family, &tuple),
                    max: limits.series_per_group_max,
                });
            }
        }
        if new_session.is_some() {
            let current =
                group.map_or(0, |g| g.sessions.len()) + pending.map_or(0, |p| p.sessions.len());
            if current >= limits.rt_sessions_per_group_max {
                return Err(LimitError::RtSessions {
                    group: group_name.to_string(),
                    max: limits.rt_sessions_per_group_max,
                });
            }
        }

        if new_values.is_empty() && new_series.is_empty() && new_session.is_none() {
            return Ok(());
        }
        let pending = adm.groups.entry(group_name.into()).or_default();
        pending
            .series
            .extend(new_series.iter().map(|&(_, key, _)| key));
        for (family, dim, value) in new_values {
            pending
                .values
                .entry((family, dim))
                .or_default()
                .insert(value.into());
        }
        if let Some(key) = new_session {
            pending.sessions.insert(key);
        }
        Ok(())
    }
}

/// Adds to `out` the values of `dims` that neither the group's interners nor the pending
/// commit hold yet.
fn unknown_values<'e>(
    group: Option<&GroupState>,
    pending: Option<&Pending>,
    family: Family,
    dims: &[&'e str],
    out: &mut Vec<(Family, usize, &'e str)>,
) {
    for (dim, &value) in dims.iter().enumerate().take(family.dims().len()) {
        let known = group.is_some_and(|g| g.family(family).interner(dim).get(value).is_some())
            || pending
                .and_then(|p| p.values(family, dim))
                .is_some_and(|set| set.contains(value));
        if !known && !out.contains(&(family, dim, value)) {
            out.push((family, dim, value));
        }
    }
}

/// Adds to `out` the series `(family, dims)` if neither the group nor the pending commit holds
/// it yet (and `out` does not already).
fn unknown_series<'e>(
    group: Option<&GroupState>,
    pending: Option<&Pending>,
    family: Family,
    dims: [&'e str; DIMS_MAX],
    out: &mut Vec<(Family, u128, [&'e str; DIMS_MAX])>,
) {
    if group.is_some_and(|g| g.family(family).has_series(&dims)) {
        return;
    }
    let key = series_key(family, &dims);
    let known =
        pending.is_some_and(|p| p.series.contains(&key)) || out.iter().any(|&(_, k, _)| k == key);
    if !known {
        out.push((family, key, dims));
    }
}

/// A 128-bit hash naming a series of a family by its values (the interned ids of a series not
/// created yet do not exist). A collision would let one series in uncounted, nothing worse.
fn series_key(family: Family, dims: &[&str; DIMS_MAX]) -> u128 {
    let mut bytes = vec![family.index() as u8];
    for value in &dims[..family.dims().len()] {
        bytes.push(0xff);
        bytes.extend_from_slice(value.as_bytes());
    }
    xxhash_rust::xxh3::xxh3_128(&bytes)
}

/// `dimension=`value`` pairs of a series, values clipped, for messages.
fn describe(family: Family, dims: &[&str; DIMS_MAX]) -> String {
    family
        .dims()
        .iter()
        .zip(dims)
        .map(|(name, value)| format!("{name}=`{}`", clip(value)))
        .collect::<Vec<_>>()
        .join(", ")
}

impl GroupState {
    /// Series held over all families.
    fn series_count(&self) -> usize {
        self.families.iter().map(|f| f.series.len()).sum()
    }
}

impl FamilyStore {
    /// Whether this family holds the series of these values.
    fn has_series(&self, dims: &[&str; DIMS_MAX]) -> bool {
        let mut key = [0u32; DIMS_MAX];
        for (i, interner) in self.interners.iter().enumerate() {
            match interner.get(dims[i]) {
                Some(id) => key[i] = id,
                None => return false,
            }
        }
        self.index.contains_key(&key)
    }
}

/// The key of the session span `e` would start in `group`, if it would start one (the event
/// reaches into the real-time window and the session is not tracked yet).
fn new_session_key(group: Option<&GroupState>, e: &Event, h: Horizons) -> Option<u128> {
    let (_, hi) = known_instants(e);
    if slot_of(hi, RT_SLOT_SECONDS) < h.rt {
        return None;
    }
    let key = super::session_key(e);
    let tracked = group.is_some_and(|g| g.sessions.contains_key(&key));
    (!tracked).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{NOW, ev};
    use jiff::Timestamp;

    fn h() -> Horizons {
        Horizons::at(NOW.parse::<Timestamp>().unwrap())
    }

    fn limits(values: usize, sessions: usize) -> StateLimits {
        StateLimits {
            dimension_values_max: values,
            rt_sessions_per_group_max: sessions,
            ..StateLimits::default()
        }
    }

    fn miniapp(id: &str, name: &str, session: &str) -> Event {
        ev(&[
            ("type", "miniapp_end"),
            ("id", id),
            ("miniapp_name", name),
            ("session_id", session),
            ("started_at", "11:00"),
            ("time", "11:01"),
        ])
    }

    /// MiniApp ends with ids 1, 2, ...: one per name, in the session beside it.
    fn miniapps(names: &[&str], sessions: &[&str]) -> Vec<Event> {
        let ids = (1..).map(|n: u32| n.to_string());
        ids.zip(names.iter().zip(sessions))
            .map(|(id, (name, session))| miniapp(&id, name, session))
            .collect()
    }

    /// Feeds `events` as [`feed`] does; they must meet exactly one refusal, whose message it
    /// returns.
    fn one_refusal(r: &mut Rollups, l: &StateLimits, events: &[Event]) -> String {
        let mut refused = feed(r, l, events);
        assert_eq!(refused.len(), 1, "{refused:?}");
        refused.remove(0)
    }

    /// Admits and applies each event in its own commit; returns the refusals' messages.
    fn feed(r: &mut Rollups, l: &StateLimits, events: &[Event]) -> Vec<String> {
        let mut refused = Vec::new();
        for e in events {
            match r.admit(e, h(), l, &mut Admission::new()) {
                Ok(()) => r.apply(e, h()),
                Err(err) => refused.push(err.to_string()),
            }
        }
        refused
    }

    #[test]
    fn a_new_value_past_the_limit_is_refused_naming_the_dimension() {
        let l = limits(2, 100);
        let mut r = Rollups::new();
        let names = ["Menu", "YesNo", "Menu", "Account"];
        let refused = one_refusal(&mut r, &l, &miniapps(&names, &["s"; 4]));
        assert!(
            refused.starts_with("`miniapp_name`: group `ocp-qa` already has 2 distinct values"),
            "{refused}"
        );
        assert!(refused.contains("`Account`"), "{refused}");
        // Known values keep flowing.
        assert!(feed(&mut r, &l, &[miniapp("5", "YesNo", "s")]).is_empty());
    }

    #[test]
    fn values_admitted_earlier_in_the_same_commit_count() {
        let l = limits(2, 100);
        let r = Rollups::new();
        let mut adm = Admission::new();
        assert!(r.admit(&miniapp("1", "A", "s"), h(), &l, &mut adm).is_ok());
        assert!(r.admit(&miniapp("2", "A", "s"), h(), &l, &mut adm).is_ok());
        assert!(r.admit(&miniapp("3", "B", "s"), h(), &l, &mut adm).is_ok());
        let err = r.admit(&miniapp("4", "C", "s"), h(), &l, &mut adm);
        assert!(matches!(
            err,
            Err(LimitError::DimensionValues {
                dimension: "miniapp_name",
                ..
            })
        ));
        // Another group has its own budget.
        let other = ev(&[
            ("type", "miniapp_end"),
            ("id", "5"),
            ("group", "acme"),
            ("miniapp_name", "C"),
        ]);
        assert!(r.admit(&other, h(), &l, &mut adm).is_ok());
    }

    #[test]
    fn sessions_past_the_limit_are_refused_but_tracked_and_old_ones_pass() {
        let l = limits(100, 2);
        let mut r = Rollups::new();
        let sessions = ["s1", "s2", "s1", "s3"];
        let refused = one_refusal(&mut r, &l, &miniapps(&["M"; 4], &sessions));
        assert!(refused.starts_with("`session_id`: group `ocp-qa` already tracks 2"));
        // An event too old for the real-time window starts no span, so it passes.
        let old = ev(&[
            ("type", "session_end"),
            ("id", "5"),
            ("session_id", "s9"),
            ("started_at", "2024-03-20T10:00:00Z"),
            ("time", "2024-03-20T10:05:00Z"),
        ]);
        assert!(feed(&mut r, &l, &[old]).is_empty());
        assert_eq!(r.stats().sessions_tracked, 2);
    }

    #[test]
    fn events_behind_the_real_time_horizon_are_not_counted() {
        let l = limits(1, 1);
        let mut r = Rollups::new();
        let start = |id: &str, session: &str, channel: &str, time: &str| {
            ev(&[
                ("type", "session_start"),
                ("id", id),
                ("session_id", session),
                ("channel", channel),
                ("time", time),
            ])
        };
        // A week old: behind the real-time window, and a session start counts nowhere else.
        let old = start("1", "old", "chat", "2024-03-20T10:00:00Z");
        assert!(r.admit(&old, h(), &l, &mut Admission::new()).is_ok());
        r.apply(&old, h());
        assert_eq!(r.stats().interned_values, 0);
        assert_eq!(r.stats().sessions_tracked, 0);
        let new = start("2", "new", "omIVR", "2024-03-27T11:00:00Z");
        assert!(feed(&mut r, &l, &[new]).is_empty());
        assert_eq!(r.stats().sessions_tracked, 1);
    }

    #[test]
    fn a_new_series_past_the_group_limit_is_refused_naming_the_tuple() {
        // A real-time session start makes one series: the real-time sessions series of its
        // (channel, test_flag, region). Three channels need three series.
        let l = StateLimits {
            series_per_group_max: 2,
            ..StateLimits::default()
        };
        let start = |id: &str, session: &str, channel: &str| {
            ev(&[
                ("type", "session_start"),
                ("id", id),
                ("session_id", session),
                ("channel", channel),
                ("time", "11:00"),
            ])
        };
        let mut r = Rollups::new();
        let starts = [
            start("1", "s1", "omIVR"),
            start("2", "s2", "chat"),
            start("3", "s3", "sms"),
            start("4", "s4", "chat"),
        ];
        let refused = one_refusal(&mut r, &l, &starts);
        expect_test::expect!["`channel`: group `ocp-qa` already holds 2 series (distinct combinations of dimension values, over all families; the limit), and this event would start another in real-time sessions: channel=`sms`, test_flag=`false`, region=`us1`; dimension values must come from small sets (names, types, locales, channels), not ids, and their combinations stay few: fix the producer, or ask the operator to raise --series-per-group-max"].assert_eq(&refused);
        assert_eq!(r.stats().series, 2);
        // A commit as a whole stays within the bound too.
        let mut adm = Admission::new();
        let l3 = StateLimits {
            series_per_group_max: 3,
            ..l
        };
        assert!(
            r.admit(&start("5", "s5", "sms"), h(), &l3, &mut adm)
                .is_ok()
        );
        assert!(
            r.admit(&start("6", "s6", "sms"), h(), &l3, &mut adm)
                .is_ok()
        );
        assert!(matches!(
            r.admit(&start("7", "s7", "web"), h(), &l3, &mut adm),
            Err(LimitError::Series { max: 3, .. })
        ));
    }
}
