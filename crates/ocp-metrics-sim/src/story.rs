//! One session's story: which flow the caller reaches, which miniApps run, how each ends, and
//! when. The result is a list of compact event drafts in story order; rendering to JSON
//! happens later, only for the events that are actually yielded.

use crate::catalog::{CHANNELS, FAIL_REASONS, GroupProfile, MINIAPPS};
use crate::rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    SessionStart,
    SessionEnd,
    DialogStart,
    DialogEnd,
    MiniappStart,
    MiniappEnd,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::SessionStart => "session_start",
            Kind::SessionEnd => "session_end",
            Kind::DialogStart => "dialog_start",
            Kind::DialogEnd => "dialog_end",
            Kind::MiniappStart => "miniapp_start",
            Kind::MiniappEnd => "miniapp_end",
        }
    }

    pub(crate) fn is_end(self) -> bool {
        matches!(self, Kind::SessionEnd | Kind::DialogEnd | Kind::MiniappEnd)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Transferred,
    Terminated,
    Error,
    Other,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Transferred => "transferred",
            Outcome::Terminated => "terminated",
            Outcome::Error => "error",
            Outcome::Other => "other",
        }
    }
}

/// A miniApp's result: the core's type, whose wire names the simulator writes.
pub(crate) use ocp_metrics_core::event::MiniappResult as Res;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) agent_requests: u8,
    pub(crate) no_inputs: u8,
    pub(crate) no_matches: u8,
    pub(crate) system_errors: u8,
    pub(crate) critical_errors: u8,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.agent_requests = self.agent_requests.saturating_add(o.agent_requests);
        self.no_inputs = self.no_inputs.saturating_add(o.no_inputs);
        self.no_matches = self.no_matches.saturating_add(o.no_matches);
        self.system_errors = self.system_errors.saturating_add(o.system_errors);
        self.critical_errors = self.critical_errors.saturating_add(o.critical_errors);
    }
}

/// `Draft::what` of a dialog event that belongs to the group's nested subflow.
pub(crate) const SUBFLOW: u8 = u8::MAX;
/// `Draft::fail` when there is no fail reason.
pub(crate) const NO_FAIL_REASON: u8 = u8::MAX;

/// One event of a session, before rendering.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Draft {
    pub(crate) time: i64,
    /// For end events: when the thing ended here started (ms since the epoch).
    pub(crate) started_at: i64,
    pub(crate) kind: Kind,
    /// The miniApp (index into `MINIAPPS`) of miniApp events, the flow (index into the group's
    /// flows, or [`SUBFLOW`]) of dialog events and of miniApp events' `flow_name`.
    pub(crate) miniapp: u8,
    pub(crate) flow: u8,
    pub(crate) root: bool,
    pub(crate) result: Res,
    pub(crate) fail: u8,
    pub(crate) outcome: Outcome,
    pub(crate) counts: Counts,
}

impl Draft {
    fn new(kind: Kind, time: i64) -> Draft {
        Draft {
            time,
            started_at: time,
            kind,
            miniapp: 0,
            flow: 0,
            root: true,
            result: Res::Success,
            fail: NO_FAIL_REASON,
            outcome: Outcome::Other,
            counts: Counts::default(),
        }
    }
}

/// Attributes shared by every event of a session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionAttrs {
    pub(crate) channel: u8,
    pub(crate) region: u8,
    pub(crate) locale: u8,
    pub(crate) test: bool,
}

/// What the flow does after an invocation.
enum Next {
    Continue,
    Retry,
    End(Outcome),
}

struct Writer<'a> {
    rng: &'a mut Rng,
    out: &'a mut Vec<Draft>,
    chat: bool,
    t: i64,
    retries_left: u32,
}

impl Writer<'_> {
    /// Runs one invocation of miniApp `m` in flow `flow` at the current time, advances the
    /// clock past it, and says what the flow does next.
    fn invoke(&mut self, m: u8, flow: u8, retry_allowed: bool) -> (Next, Counts) {
        let app = &MINIAPPS[usize::from(m)];
        let rng = &mut *self.rng;
        let start = self.t;

        let mut start_ev = Draft::new(Kind::MiniappStart, start);
        start_ev.miniapp = m;
        start_ev.flow = flow;
        self.out.push(start_ev);

        // Durations skew short (u^2): most steps are answered quickly, a few drag on.
        let u = rng.f64();
        let mut secs = app.min_secs + (app.max_secs - app.min_secs) * u * u;
        if self.chat {
            secs = (secs * CHAT_SLOWDOWN).min(MAX_MINIAPP_SECS);
        }

        let p_fail = BASE_P_FAIL * app.difficulty;
        let p_dtmf = if self.chat { 0.0 } else { P_DTMF_ESCAPE };
        let p_success = 1.0 - p_fail - P_HANGUP - p_dtmf - P_ERROR - P_OTHER;
        // Weights in the order of `Res::ALL`.
        let result =
            Res::ALL[rng.weighted(&[p_success, p_fail, P_HANGUP, p_dtmf, P_ERROR, P_OTHER])];

        let mut c = Counts {
            no_inputs: small_count(
                rng,
                if self.chat {
                    P_NO_INPUT_ZERO_CHAT
                } else {
                    P_NO_INPUT_ZERO_IVR
                },
            ),
            no_matches: small_count(rng, P_NO_MATCH_ZERO),
            agent_requests: 0,
            system_errors: 0,
            critical_errors: 0,
        };
        if rng.chance(P_AGENT_REQUEST) {
            c.agent_requests = 1 + u8::from(rng.chance(P_SECOND_AGENT_REQUEST));
        }
        let mut fail = NO_FAIL_REASON;
        match result {
            Res::Fail => {
                fail = rng.weighted(&FAIL_REASON_WEIGHTS) as u8;
                match FAIL_REASONS[usize::from(fail)] {
                    // Giving up after the maximum number of attempts means every attempt was
                    // a no-input or a no-match.
                    "max_attempts" => c.no_matches = c.no_matches.max(3 - c.no_inputs.min(3)),
                    "not_recognized" => c.no_matches = c.no_matches.max(1),
                    _ => {}
                }
            }
            Res::Error => {
                if rng.chance(P_SYSTEM_RATHER_THAN_CRITICAL) {
                    c.system_errors = 1 + u8::from(rng.chance(P_SECOND_SYSTEM_ERROR));
                } else {
                    c.critical_errors = 1;
                }
            }
            Res::Hangup => {
                // The caller hung up part-way through the step.
                secs = app.min_secs + (secs - app.min_secs) * rng.f64();
            }
            _ => {}
        }

        let millis =
            ((secs * 1000.0) as i64 + rng.range(0, INVOCATION_JITTER_MS)).min(MAX_MINIAPP_MS);
        let end = start + millis;
        let mut end_ev = Draft::new(Kind::MiniappEnd, end);
        end_ev.started_at = start;
        end_ev.miniapp = m;
        end_ev.flow = flow;
        end_ev.result = result;
        end_ev.fail = fail;
        end_ev.counts = c;
        self.out.push(end_ev);
        self.t = end + rng.range(MIN_GAP_MS, MAX_GAP_MS);

        let next = match result {
            Res::Error => Next::End(Outcome::Error),
            Res::Hangup => Next::End(Outcome::Terminated),
            Res::DtmfEscape => Next::End(Outcome::Transferred),
            _ if c.agent_requests > 0 && rng.chance(P_AGENT_REQUEST_HONOURED) => {
                Next::End(Outcome::Transferred)
            }
            Res::Fail => {
                let x = rng.f64();
                if retry_allowed && self.retries_left > 0 && x < P_RETRY_AFTER_FAIL {
                    self.retries_left -= 1;
                    Next::Retry
                } else if x < P_RETRY_AFTER_FAIL + P_ESCALATE_AFTER_FAIL {
                    Next::End(Outcome::Transferred)
                } else {
                    Next::Continue
                }
            }
            _ => Next::Continue,
        };
        (next, c)
    }

    /// Runs a dialog of `steps`, with its start and end events, and returns its outcome if it
    /// ended the conversation early (otherwise `None`) and its totals.
    fn subflow(&mut self, steps: &[u8]) -> (Option<Outcome>, Counts) {
        let start = self.t;
        let mut ds = Draft::new(Kind::DialogStart, start);
        ds.flow = SUBFLOW;
        ds.root = false;
        self.out.push(ds);
        self.t += self.rng.range(SUBFLOW_ENTER_MS.0, SUBFLOW_ENTER_MS.1);
        let mut totals = Counts::default();
        let mut ended = None;
        for &m in steps {
            let (next, c) = self.invoke(m, SUBFLOW, false);
            totals.add(&c);
            if let Next::End(o) = next {
                ended = Some(o);
                break;
            }
        }
        self.t += self.rng.range(SUBFLOW_EXIT_MS.0, SUBFLOW_EXIT_MS.1);
        let mut de = Draft::new(Kind::DialogEnd, self.t);
        de.started_at = start;
        de.flow = SUBFLOW;
        de.root = false;
        // A subflow that hands control back to its parent fits none of the named outcomes.
        de.outcome = ended.unwrap_or(Outcome::Other);
        de.counts = totals;
        self.out.push(de);
        self.t += self.rng.range(SUBFLOW_RETURN_MS.0, SUBFLOW_RETURN_MS.1);
        (ended, totals)
    }
}

/// A count that is mostly 0, sometimes 1-3; `p_zero` is the chance of 0.
fn small_count(rng: &mut Rng, p_zero: f64) -> u8 {
    let x = rng.f64();
    if x < p_zero {
        0
    } else {
        let rest = (x - p_zero) / (1.0 - p_zero);
        if rest < 0.7 {
            1
        } else if rest < 0.93 {
            2
        } else {
            3
        }
    }
}

/// Writes the drafts of one session starting at `start` (ms) into `out` (cleared first), in
/// story order, and returns the session's attributes.
pub(crate) fn session(
    rng: &mut Rng,
    profile: &GroupProfile,
    test_fraction: f64,
    start: i64,
    out: &mut Vec<Draft>,
) -> SessionAttrs {
    out.clear();
    let channel = if rng.chance(P_IVR) { 0 } else { 1 };
    debug_assert_eq!(CHANNELS[0], "omIVR");
    let attrs = SessionAttrs {
        channel,
        region: rng.weighted(&profile.region_weights) as u8,
        locale: rng.weighted(&profile.locale_weights) as u8,
        test: rng.chance(test_fraction),
    };
    let flow = rng.weighted(&profile.flow_weights) as u8;
    let steps = &profile.flows[usize::from(flow)].steps;
    let nested = steps.len() >= 2 && rng.chance(P_NESTED_DIALOG);
    let closing_ms = rng.range(MIN_SESSION_CLOSE_MS, MAX_SESSION_CLOSE_MS);

    out.push(Draft::new(Kind::SessionStart, start));
    let mut w = Writer {
        rng,
        out,
        chat: channel == 1,
        t: start,
        retries_left: MAX_RETRIES_PER_SESSION,
    };
    w.t += w.rng.range(ANSWER_MS.0, ANSWER_MS.1);
    let dialog_start = w.t;
    let mut ds = Draft::new(Kind::DialogStart, dialog_start);
    ds.flow = flow;
    w.out.push(ds);
    w.t += w.rng.range(DIALOG_SETUP_MS.0, DIALOG_SETUP_MS.1);

    let mut totals = Counts::default();
    let mut ended = None;
    let mut subflow_due = nested;
    let mut i = 0;
    while i < steps.len() {
        // The subflow runs once, between the first and second steps (a retried step must not
        // run it again).
        if subflow_due && i == 1 {
            subflow_due = false;
            let (sub_end, sub_totals) = w.subflow(&profile.subflow.steps);
            totals.add(&sub_totals);
            if sub_end.is_some() {
                ended = sub_end;
                break;
            }
        }
        let (next, c) = w.invoke(steps[i], flow, true);
        totals.add(&c);
        match next {
            Next::Continue => i += 1,
            Next::Retry => {}
            Next::End(o) => {
                ended = Some(o);
                break;
            }
        }
    }
    let outcome = ended.unwrap_or_else(|| {
        // The flow ran to its end: most callers are served, some are routed to an agent at
        // the end by design (e.g. a request the bot cannot complete).
        [Outcome::Terminated, Outcome::Transferred, Outcome::Other][w.rng.weighted(&[
            P_END_TERMINATED,
            P_END_TRANSFERRED,
            P_END_OTHER,
        ])]
    });
    // A goodbye prompt or the transfer announcement, stretched if needed so that no session is
    // shorter than the minimum.
    let (lo, hi) = if ended == Some(Outcome::Terminated) {
        HUNG_UP_CLOSE_MS
    } else {
        ANNOUNCE_MS
    };
    let announce = w.rng.range(lo, hi);
    let dialog_end = (w.t + announce).max(start + MIN_SESSION_MS - closing_ms);
    let mut de = Draft::new(Kind::DialogEnd, dialog_end);
    de.started_at = dialog_start;
    de.flow = flow;
    de.outcome = outcome;
    de.counts = totals;
    w.out.push(de);

    debug_assert!(w.out.iter().filter(|d| d.kind.is_end()).count() < MAX_END_EVENTS);
    let session_end = dialog_end + closing_ms;
    debug_assert!(
        session_end - start <= MAX_SESSION_MS,
        "{}",
        session_end - start
    );
    let mut se = Draft::new(Kind::SessionEnd, session_end);
    se.started_at = start;
    w.out.push(se);
    attrs
}

/// Share of sessions on the IVR channel (the rest are chat).
const P_IVR: f64 = 0.7;
/// Share of root dialogs that call the nested subflow.
const P_NESTED_DIALOG: f64 = 0.08;
/// Per-invocation result probabilities; success takes what is left (about 80%).
const BASE_P_FAIL: f64 = 0.07;
const P_HANGUP: f64 = 0.035;
const P_DTMF_ESCAPE: f64 = 0.02;
const P_ERROR: f64 = 0.02;
const P_OTHER: f64 = 0.03;
/// Chance that an invocation carries an agent request (and then a second one), and that the
/// flow then transfers.
const P_AGENT_REQUEST: f64 = 0.03;
const P_SECOND_AGENT_REQUEST: f64 = 0.2;
const P_AGENT_REQUEST_HONOURED: f64 = 0.7;
/// After a failed step the flow retries it, escalates to an agent, or moves on.
const P_RETRY_AFTER_FAIL: f64 = 0.45;
const P_ESCALATE_AFTER_FAIL: f64 = 0.35;
/// How a flow that ran all its steps ends.
const P_END_TERMINATED: f64 = 0.75;
const P_END_TRANSFERRED: f64 = 0.22;
const P_END_OTHER: f64 = 0.03;
/// Chances that an invocation has no no-input (IVR callers often stay silent once, chat users
/// rarely time out) and no no-match.
const P_NO_INPUT_ZERO_IVR: f64 = 0.86;
const P_NO_INPUT_ZERO_CHAT: f64 = 0.96;
const P_NO_MATCH_ZERO: f64 = 0.85;
/// Weights of `max_attempts`, `not_recognized`, `validation_failed` among failures.
const FAIL_REASON_WEIGHTS: [f64; 3] = [0.45, 0.35, 0.2];
/// An errored invocation has system errors (sometimes two) or else one critical error.
const P_SYSTEM_RATHER_THAN_CRITICAL: f64 = 0.7;
const P_SECOND_SYSTEM_ERROR: f64 = 0.15;
/// At most this many retries per session, which also bounds the session's length.
const MAX_RETRIES_PER_SESSION: u32 = 2;
/// Chat users type slower than callers speak.
const CHAT_SLOWDOWN: f64 = 1.25;
/// Upper bound of one invocation, seconds and ms.
const MAX_MINIAPP_SECS: f64 = 60.0;
const MAX_MINIAPP_MS: i64 = 60_000;
/// Time ranges [lo, hi) of the story's steps, ms: from the session's start to the root
/// dialog's start (answering), from there to the first miniApp (welcome prompt), into and out
/// of the subflow and back to the parent, extra time of an invocation over its whole seconds,
/// and from the last miniApp to the root dialog's end (a goodbye or transfer announcement, or
/// almost nothing when the caller hung up).
const ANSWER_MS: (i64, i64) = (200, 1500);
const DIALOG_SETUP_MS: (i64, i64) = (300, 2500);
const SUBFLOW_ENTER_MS: (i64, i64) = (50, 400);
const SUBFLOW_EXIT_MS: (i64, i64) = (50, 300);
const SUBFLOW_RETURN_MS: (i64, i64) = (100, 600);
const INVOCATION_JITTER_MS: i64 = 1000;
const ANNOUNCE_MS: (i64, i64) = (500, 6000);
const HUNG_UP_CLOSE_MS: (i64, i64) = (50, 500);
/// Pause between one miniApp's end and the next event (prompts, back-end lookups), ms.
const MIN_GAP_MS: i64 = 300;
const MAX_GAP_MS: i64 = 3000;
/// From the root dialog's end to the session's end, ms.
const MIN_SESSION_CLOSE_MS: i64 = 100;
const MAX_SESSION_CLOSE_MS: i64 = 2000;
/// Session length bounds, ms. The maximum is what the story can reach at worst (5 steps, a
/// 2-step subflow and 2 retries of at most 60 s each, plus pauses), kept under 10 minutes.
pub(crate) const MIN_SESSION_MS: i64 = 30_000;
/// Most end events one session can have: 9 invocations (as above), 2 dialogs, the session.
pub(crate) const MAX_END_EVENTS: usize = 12;
pub(crate) const MAX_SESSION_MS: i64 = 600_000;
