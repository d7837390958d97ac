//! Compaction: after retention has emptied columns, drop the series that hold no data any more,
//! the dimension values no remaining series uses, and groups left with nothing, so that memory
//! (and checkpoints) stay flat under steady load with churning dimension values.
//!
//! Invisible to queries: an answer only ever shows series with data in range, and tags come
//! from values, never from interned ids. Real-time session spans point at their series by
//! index, so a series a span points at is kept (even when empty) and spans are re-pointed.

use super::{FamilyStore, Interner, Rollups};
use crate::metrics::{DIMS_MAX, Family};
use rustc_hash::FxHashMap;

/// What one compaction dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CompactStats {
    pub series_dropped: usize,
    pub values_dropped: usize,
    pub groups_dropped: usize,
}

/// A span table whose capacity is more than this many times its length is shrunk.
const SHRINK_FACTOR: usize = 2;

impl Rollups {
    /// Drops empty series (unless a session span points at them), unused interned values and
    /// empty groups; shrinks oversized buffers.
    pub fn compact(&mut self) -> CompactStats {
        let mut stats = CompactStats::default();
        for g in self.groups.values_mut() {
            for f in &mut g.families {
                let referenced: Vec<bool> = if f.family == Family::RtSessions {
                    let mut r = vec![false; f.series.len()];
                    for span in g.sessions.values() {
                        if let Some(x) = r.get_mut(span.series as usize) {
                            *x = true;
                        }
                    }
                    r
                } else {
                    Vec::new()
                };
                let remap = f.compact(&referenced, &mut stats);
                if let Some(remap) = remap
                    && f.family == Family::RtSessions
                {
                    for span in g.sessions.values_mut() {
                        span.series = remap[span.series as usize];
                    }
                }
            }
            if g.sessions.capacity() > SHRINK_FACTOR * g.sessions.len().max(16) {
                g.sessions.shrink_to_fit();
            }
        }
        let before = self.groups.len();
        self.groups.retain(|_, g| {
            !g.sessions.is_empty() || g.families.iter().any(|f| !f.series.is_empty())
        });
        stats.groups_dropped = before - self.groups.len();
        stats
    }
}

impl FamilyStore {
    /// Compacts this family; returns the old-to-new series index map when series moved.
    fn compact(&mut self, referenced: &[bool], stats: &mut CompactStats) -> Option<Vec<u32>> {
        for s in &mut self.series {
            s.column.shrink();
        }
        self.total.shrink();
        let keep = |i: usize, s: &super::Series| {
            !s.column.is_empty() || referenced.get(i).copied().unwrap_or(false)
        };
        let dropping = self.series.iter().enumerate().any(|(i, s)| !keep(i, s));
        // Which interned values the kept series use.
        let mut used: Vec<Vec<bool>> = self
            .interners
            .iter()
            .map(|i| vec![false; i.len()])
            .collect();
        for (i, s) in self.series.iter().enumerate() {
            if keep(i, s) {
                for (d, u) in used.iter_mut().enumerate() {
                    u[s.dims[d] as usize] = true;
                }
            }
        }
        let unused_values = used.iter().flatten().filter(|u| !**u).count();
        if !dropping && unused_values == 0 {
            return None;
        }
        // New interners holding only the used values, in their old order.
        let mut value_remap: Vec<Vec<u32>> = Vec::with_capacity(self.interners.len());
        for (interner, used) in self.interners.iter_mut().zip(&used) {
            let mut map = vec![u32::MAX; used.len()];
            let mut values = Vec::with_capacity(used.iter().filter(|u| **u).count());
            for (old, value) in std::mem::take(&mut interner.values).into_iter().enumerate() {
                if used[old] {
                    map[old] = values.len() as u32;
                    values.push(value);
                }
            }
            *interner = Interner {
                values,
                ids: FxHashMap::default(),
            };
            interner.rebuild();
            value_remap.push(map);
        }
        stats.values_dropped += unused_values;
        // Kept series, re-keyed, and the old-to-new index map.
        let old = std::mem::take(&mut self.series);
        let mut remap = vec![u32::MAX; old.len()];
        self.index = FxHashMap::default();
        for (i, mut s) in old.into_iter().enumerate() {
            if !keep(i, &s) {
                stats.series_dropped += 1;
                continue;
            }
            let mut dims = [0u32; DIMS_MAX];
            for (d, map) in value_remap.iter().enumerate() {
                dims[d] = map[s.dims[d] as usize];
            }
            s.dims = dims;
            remap[i] = self.series.len() as u32;
            self.index.insert(dims, remap[i]);
            self.series.push(s);
        }
        self.series.shrink_to_fit();
        Some(remap)
    }
}

#[cfg(test)]
mod tests {
    use crate::metrics::Endpoint;
    use crate::query::{Query, QueryDraft};
    use crate::rollup::{Horizons, Rollups};
    use crate::testkit::{ev, query, render_answer, vals};
    use jiff::Timestamp;

    fn answer(r: &Rollups, endpoint: Endpoint, q: QueryDraft, now: Timestamp) -> String {
        render_answer(
            &r.query(&Query::parse(endpoint, q, now).unwrap(), now)
                .unwrap(),
        )
    }

    fn rt_sessions_by_channel(r: &Rollups, now: Timestamp) -> String {
        let mut q = query(
            &["session.initiated"],
            "2024/03/27 11:00:00",
            "2024/03/27 12:00:00",
            "hour",
        );
        q.filters = Some(vec![("channel".into(), vals(&[]))]);
        q.drilldown = Some(true);
        answer(r, Endpoint::V3RtSessions, q, now)
    }

    #[test]
    fn compaction_drops_emptied_series_and_values_and_repoints_spans() {
        let t0: Timestamp = "2024-03-27T12:00:00Z".parse().unwrap();
        let h0 = Horizons::at(t0);
        let mut r = Rollups::new();
        // A chat session 48 hours ago (its series is interned first) and an IVR session that is
        // still going on.
        let events = [
            ev(&[
                ("type", "session_start"),
                ("id", "a"),
                ("session_id", "chat-1"),
                ("channel", "chat"),
                ("time", "2024-03-25T12:00:00Z"),
            ]),
            ev(&[
                ("type", "miniapp_end"),
                ("id", "b"),
                ("session_id", "chat-1"),
                ("channel", "chat"),
                ("miniapp_name", "Gone"),
                ("started_at", "2024-03-25T12:01:00Z"),
                ("time", "2024-03-25T12:02:00Z"),
            ]),
            ev(&[
                ("type", "session_start"),
                ("id", "c"),
                ("session_id", "ivr-1"),
                ("channel", "omIVR"),
                ("time", "2024-03-27T11:00:00Z"),
            ]),
        ];
        for e in &events {
            r.apply(e, h0);
        }
        // Two hours later the chat session has left the real-time window (but not batch).
        let t1: Timestamp = "2024-03-27T14:00:00Z".parse().unwrap();
        r.evict(Horizons::at(t1));
        let before = rt_sessions_by_channel(&r, t1);
        let stats_before = r.stats();
        let c = r.compact();
        assert!(c.series_dropped >= 3, "{c:?}");
        assert!(c.values_dropped >= 2, "{c:?}");
        assert_eq!(c.groups_dropped, 0);
        assert!(r.stats().series < stats_before.series);
        assert_eq!(rt_sessions_by_channel(&r, t1), before);
        // The IVR span was re-pointed: widening it counts in the IVR series.
        let later = ev(&[
            ("type", "session_end"),
            ("id", "d"),
            ("session_id", "ivr-1"),
            ("channel", "omIVR"),
            ("started_at", "2024-03-27T11:00:00Z"),
            ("time", "2024-03-27T11:12:00Z"),
        ]);
        r.apply(&later, Horizons::at(t1));
        let after = rt_sessions_by_channel(&r, t1);
        assert!(after.contains("channel=omIVR} 11:00=3"), "{after}");
        assert!(!after.contains("chat"), "{after}");
        // The batch data of the chat session is still there.
        let batch = answer(
            &r,
            Endpoint::V3BatchMiniapps,
            query(
                &["totalinvocations"],
                "2024/03/25 00:00:00",
                "2024/03/26 00:00:00",
                "day",
            ),
            t1,
        );
        assert!(batch.contains("=1"), "{batch}");
        // A fresh compaction finds nothing more to do; and groups with nothing left go.
        assert_eq!(r.compact().series_dropped, 0);
        let t2: Timestamp = "2026-04-01T00:00:00Z".parse().unwrap();
        r.evict(Horizons::at(t2));
        assert_eq!(r.compact().groups_dropped, 1);
        assert_eq!(r.stats().groups, 0);
    }
}
