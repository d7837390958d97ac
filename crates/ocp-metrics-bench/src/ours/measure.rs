//! Measures ocp-metrics: the ingest phases with freshness probes, the queries, the restarts and
//! the memory of history and of active series, into one [`OursOut`].

use super::{Ours, PROBE_GROUP};
use crate::data::{self, Batch, DataStats};
use crate::http::{self, IngestRun};
use crate::procs::{self, Noise, wait_quiet};
use crate::queries::{self, Norm, QuerySpec, Suite};
use crate::report::{self, QueryTiming, source_revision};
use crate::stats::{self, Freshness, FreshnessSummary, ms};
use crate::{Phase, Scale, phases_json, say};
use anyhow::bail;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What ocp-metrics measured, and its answers (the reference the baselines are compared with).
#[derive(Debug)]
pub struct OursOut {
    pub version: String,
    pub specs: Vec<QuerySpec>,
    pub answers: Vec<Norm>,
    pub ingest: Vec<(Phase, IngestRun)>,
    pub queries: Vec<QueryTiming>,
    pub qps: f64,
    pub fresh_idle: FreshnessSummary,
    pub fresh_load: FreshnessSummary,
    pub rss_per_million: f64,
    pub rss_per_million_aged: f64,
    pub rss_per_series: f64,
    pub disk_per_event: f64,
    pub ready_crash_ms: f64,
    pub ready_graceful_ms: f64,
    /// Whether every answer was the same after each restart as before.
    pub consistent: bool,
    /// Share of all CPU time used by other processes during each timed phase.
    pub noise: Noise,
    pub json: Value,
}

/// Grace for a server to exit after SIGTERM: it writes a final checkpoint first.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(600);
/// Pause before reading the RSS of an idle server, so that it has settled after start-up.
const SETTLE: Duration = Duration::from_millis(500);
/// The clock jump of the history-only memory measurement: past the 49-hour dedupe horizon and
/// the 48-hour real-time window.
const AGED_HOURS: i64 = 50;
/// Events per request of the active-series test.
const SERIES_BATCH: usize = 1000;
/// Producers of the active-series test and clients of the queries-per-second measurement.
const CLIENTS: usize = 8;

/// Runs every ocp-metrics measurement on a fresh data directory under `work`; `perf` records
/// profiles there.
pub fn run_ours(
    perf: bool,
    scale: &Scale,
    work: &Path,
    bin: &Path,
    data_path: &Path,
    data: &DataStats,
) -> anyhow::Result<OursOut> {
    let dir = work.join("ocp-data");
    let _ = std::fs::remove_dir_all(&dir);
    let (mut s, ready_empty) = Ours::start(bin, &dir, &work.join("ocp-metrics.log"))?;
    let version = format!("{} ({})", s.version(), source_revision());
    say(format!(
        "ocp-metrics ({version}) ready in {:.0} ms at {}",
        ms(ready_empty),
        s.url
    ));
    std::thread::sleep(Duration::from_millis(300));
    let rss_empty = s.proc.rss_bytes();
    let mut m = Measure {
        perf,
        work,
        probes: Probes {
            run_id: Timestamp::now().as_millisecond() as u64,
            next: 0,
        },
        noise: Noise::default(),
    };

    let (ingest, fresh_load) = m.ingest(&s, scale, data_path)?;
    check_accepted(&ingest, data)?;
    let agent = http::agent();
    let fresh_idle = m.probe_idle(&s, &agent, scale.probes)?;
    let rss_loaded = s.proc.rss_bytes();
    let disk_loaded = procs::dir_bytes(&dir);

    let suite = Suite::new()?;
    let (answers, timings, qps) = m.queries(&s, &agent, scale, &suite)?;
    let restarts = m.restarts(&mut s, &agent, &suite, &answers, &dir)?;
    let (rss_aged, series) = if scale.footprint {
        let (clock, rss_aged) = aged_memory(&mut s)?;
        let series = series_memory(&mut s, &clock, scale.series_test, rss_aged)?;
        (rss_aged, series)
    } else {
        // Not measured (--no-footprint): reported as zero.
        let none = SeriesMemory {
            per_series: 0.0,
            per_series_live: 0.0,
        };
        (rss_empty, none)
    };
    s.proc.terminate(SHUTDOWN_TIMEOUT)?;

    let millions = data.unique as f64 / 1e6;
    let rss_per_million = restarts.rss.saturating_sub(rss_empty) as f64 / millions;
    let rss_per_million_aged = rss_aged.saturating_sub(rss_empty) as f64 / millions;
    let disk_per_event = restarts.disk_after_shutdown as f64 / data.unique as f64;
    let (fresh_idle, fresh_load) = (fresh_idle.summary(), fresh_load.summary());
    let json = json!({
        "version": version,
        "ingest": phases_json(&ingest),
        "freshness_idle": fresh_idle,
        "freshness_under_load": fresh_load,
        "queries": timings,
        "qps_8_clients": qps,
        "footprint": {
            "rss_empty_bytes": rss_empty,
            "rss_loaded_bytes": rss_loaded,
            "rss_restarted_bytes": restarts.rss,
            "rss_bytes_per_million_events": rss_per_million,
            "rss_aged_bytes": rss_aged,
            "rss_bytes_per_million_events_aged": rss_per_million_aged,
            "rss_bytes_per_active_series": series.per_series,
            "rss_bytes_per_active_series_live_growth": series.per_series_live,
            "series_test": scale.series_test,
            "disk_loaded_bytes": disk_loaded,
            "disk_after_shutdown_bytes": restarts.disk_after_shutdown,
            "disk_bytes_per_event": disk_per_event,
            "ready_empty_ms": ms(ready_empty),
            "ready_after_kill9_ms": ms(restarts.ready_crash),
            "shutdown_ms": ms(restarts.shutdown),
            "ready_after_sigterm_ms": ms(restarts.ready_graceful),
        },
        "consistent_across_restarts": restarts.consistent,
        "foreign_cpu_share": m.noise.json(),
        "specs": suite.specs,
    });
    Ok(OursOut {
        version,
        specs: suite.specs,
        answers,
        ingest,
        queries: timings,
        qps,
        fresh_idle,
        fresh_load,
        rss_per_million,
        rss_per_million_aged,
        rss_per_series: series.per_series,
        disk_per_event,
        ready_crash_ms: ms(restarts.ready_crash),
        ready_graceful_ms: ms(restarts.ready_graceful),
        consistent: restarts.consistent,
        noise: m.noise,
        json,
    })
}

/// The state the measurements share: options, the probe numbers and the CPU noise.
struct Measure<'a> {
    perf: bool,
    work: &'a Path,
    probes: Probes,
    noise: Noise,
}

/// Numbers freshness probes.
struct Probes {
    /// Makes probe ids unique across runs against the same data directory.
    run_id: u64,
    /// The next unused probe number.
    next: u64,
}

/// What the two restarts measured.
struct Restarts {
    ready_crash: Duration,
    shutdown: Duration,
    disk_after_shutdown: u64,
    ready_graceful: Duration,
    /// RSS after the restart that followed SIGTERM: the loaded data set in a fresh process.
    rss: u64,
    consistent: bool,
}

/// The server's clock when started with `--clock-start`: `start` at real instant `real`.
struct ServerClock {
    start: Timestamp,
    real: Timestamp,
}

impl ServerClock {
    fn now(&self) -> Timestamp {
        self.start + Timestamp::now().duration_since(self.real)
    }
}

/// What the active-series test measured, in bytes per series.
struct SeriesMemory {
    per_series: f64,
    per_series_live: f64,
}

impl Measure<'_> {
    /// Where a `perf` profile named `name` goes, with `--perf`.
    fn perf_out(&self, name: &str) -> Option<PathBuf> {
        self.perf.then(|| self.work.join(name))
    }

    /// The four ingest phases; phase D with freshness probes (and a profile with `--perf`).
    fn ingest(
        &mut self,
        s: &Ours,
        scale: &Scale,
        data_path: &Path,
    ) -> anyhow::Result<(Vec<(Phase, IngestRun)>, Freshness)> {
        let mut fresh_load = Freshness::default();
        let pids = [s.proc.pid()];
        let perf_out = self.perf_out("perf-ingest.data");
        let ingest = crate::ingest_phases(
            scale,
            data_path,
            |p| p.batch,
            |phase, batches| {
                wait_quiet(&pids, &format!("ingest {}", phase.label));
                let label = format!("ingest {}", phase.label);
                let run = self.noise.meter(label, &pids, || {
                    if phase.label == "D" {
                        let perf = procs::start_perf(s.proc.pid(), perf_out.as_deref());
                        let run =
                            ingest_probed(s, phase, batches, &mut self.probes, &mut fresh_load);
                        procs::perf_stop(perf);
                        run
                    } else {
                        http::ingest(&s.ingest_target(), batches, phase.producers, phase.batch)
                    }
                })?;
                say_ingest(phase, &run);
                Ok(run)
            },
        )?;
        Ok((ingest, fresh_load))
    }

    /// Freshness when idle: `probes` probes one after the other.
    fn probe_idle(
        &mut self,
        s: &Ours,
        agent: &ureq::Agent,
        probes: usize,
    ) -> anyhow::Result<Freshness> {
        let mut fresh = Freshness::default();
        for _ in 0..probes {
            fresh.push(s.probe(agent, self.probes.next, self.probes.run_id)?);
            self.probes.next += 1;
        }
        Ok(fresh)
    }

    /// Every query's answer and latency, then queries per second under 8 clients.
    fn queries(
        &mut self,
        s: &Ours,
        agent: &ureq::Agent,
        scale: &Scale,
        suite: &Suite,
    ) -> anyhow::Result<(Vec<Norm>, Vec<QueryTiming>, f64)> {
        let pids = [s.proc.pid()];
        procs::wait_settled(s.proc.pid(), "queries");
        wait_quiet(&pids, "queries");
        let perf = procs::start_perf(s.proc.pid(), self.perf_out("perf-query.data").as_deref());
        let (answers, timings) = self.noise.meter("query latency", &pids, || {
            let mut answers = Vec::new();
            let mut timings = Vec::new();
            for (spec, body) in suite.iter() {
                let (answer, timing) = time_query(s, agent, spec, body, scale.ours_iterations)?;
                answers.push(answer);
                timings.push(timing);
            }
            anyhow::Ok((answers, timings))
        })?;
        wait_quiet(&pids, "queries per second");
        let qps = self.noise.meter("queries per second", &pids, || {
            http::throughput(
                CLIENTS,
                Duration::from_secs_f64(scale.qps_seconds),
                |agent, c, i| {
                    let k = (c + i) % suite.specs.len();
                    s.query(agent, &suite.specs[k], &suite.bodies[k])
                        .map(|_| ())
                },
            )
        })?;
        procs::perf_stop(perf);
        say(format!("ocp-metrics: {qps:.0} queries/s with 8 clients"));
        Ok((answers, timings, qps))
    }

    /// Restart after a crash (kill -9: recovery replays the log after the last checkpoint),
    /// then after SIGTERM (which writes a final checkpoint); checks the answers after each.
    fn restarts(
        &mut self,
        s: &mut Ours,
        agent: &ureq::Agent,
        suite: &Suite,
        answers: &[Norm],
        dir: &Path,
    ) -> anyhow::Result<Restarts> {
        wait_quiet(&[s.proc.pid()], "restart after kill -9");
        s.proc.kill9();
        let ready_crash = s.restart(self.perf_out("perf-restart-kill9.data").as_deref())?;
        let mut consistent = same_answers(s, agent, suite, answers, "kill -9 and restart")?;
        say(format!(
            "ocp-metrics restart after kill -9: ready in {:.0} ms",
            ms(ready_crash)
        ));
        wait_quiet(&[s.proc.pid()], "restart after SIGTERM");
        let shutdown = s.proc.terminate(SHUTDOWN_TIMEOUT)?;
        let disk_after_shutdown = procs::dir_bytes(dir);
        let ready_graceful = s.restart(self.perf_out("perf-restart-sigterm.data").as_deref())?;
        consistent &= same_answers(s, agent, suite, answers, "SIGTERM and restart")?;
        std::thread::sleep(SETTLE);
        let rss = s.proc.rss_bytes();
        say(format!(
            "ocp-metrics SIGTERM took {:.0} ms; restart ready in {:.0} ms; RSS {} MB",
            ms(shutdown),
            ms(ready_graceful),
            rss >> 20
        ));
        Ok(Restarts {
            ready_crash,
            shutdown,
            disk_after_shutdown,
            ready_graceful,
            rss,
            consistent,
        })
    }
}

/// Sends one phase's batches while probing freshness into `fresh`.
fn ingest_probed(
    s: &Ours,
    phase: &Phase,
    batches: &[Batch],
    probes: &mut Probes,
    fresh: &mut Freshness,
) -> anyhow::Result<IngestRun> {
    let target = s.ingest_target();
    let probe_agent = http::agent();
    let (run, next) = procs::with_probes(
        |n| s.probe(&probe_agent, n, probes.run_id),
        probes.next,
        fresh,
        || http::ingest(&target, batches, phase.producers, phase.batch),
    )?;
    probes.next = next;
    Ok(run)
}

fn say_ingest(phase: &Phase, run: &IngestRun) {
    say(format!(
        "ocp-metrics ingest {} (batch {}, {} producer(s)): {} events in {:.2} s = {} ev/s; ack p50 {:.2} ms p99 {:.2} ms; {} duplicates, {} rejected",
        phase.label,
        phase.batch,
        phase.producers,
        run.events,
        run.seconds,
        report::num(run.events_per_second),
        run.latency.p50,
        run.latency.p99,
        run.duplicates,
        run.rejected
    ));
    for r in &run.first_rejections {
        eprintln!("    rejected: {r}");
    }
}

/// Fails unless every event was sent and exactly the distinct ones were accepted.
fn check_accepted(ingest: &[(Phase, IngestRun)], data: &DataStats) -> anyhow::Result<()> {
    let sent: u64 = ingest.iter().map(|(_, r)| r.events).sum();
    let accepted: u64 = ingest.iter().map(|(_, r)| r.accepted).sum();
    let rejected: u64 = ingest.iter().map(|(_, r)| r.rejected).sum();
    if sent != data.lines || accepted != data.unique || rejected != 0 {
        bail!(
            "ocp-metrics accepted {accepted} of {sent} events sent ({rejected} rejected); expected {} distinct of {}",
            data.unique,
            data.lines
        );
    }
    Ok(())
}

/// One query's answer, then its latency over `iterations` runs.
fn time_query(
    s: &Ours,
    agent: &ureq::Agent,
    spec: &QuerySpec,
    body: &str,
    iterations: usize,
) -> anyhow::Result<(Norm, QueryTiming)> {
    let (out, _) = s.query(agent, spec, body)?;
    let (norm, shape) = queries::norm_ours(spec, &out)?;
    let latency = stats::sample(iterations, || Ok(s.query(agent, spec, body)?.1))?;
    say(format!(
        "ocp-metrics {:<20} p50 {:.2} ms p99 {:.2} ms ({} series x {} buckets, {} KB)",
        spec.name,
        latency.p50,
        latency.p99,
        shape.series,
        shape.buckets,
        shape.bytes >> 10
    ));
    let timing = QueryTiming {
        name: spec.name,
        latency,
        series: shape.series,
        buckets: shape.buckets,
        bytes: shape.bytes,
    };
    Ok((norm, timing))
}

/// Whether every query answers as `before`; prints the differences (`when` says after what).
fn same_answers(
    s: &Ours,
    agent: &ureq::Agent,
    suite: &Suite,
    before: &[Norm],
    when: &str,
) -> anyhow::Result<bool> {
    let mut same = true;
    for ((spec, body), before) in suite.iter().zip(before) {
        let (out, _) = s.query(agent, spec, body)?;
        let (after, _) = queries::norm_ours(spec, &out)?;
        let d = queries::diff(before, &after, 5);
        if !d.is_empty() {
            eprintln!("  ocp-metrics {} changed after {when}:", spec.name);
            for x in d {
                eprintln!("      {x}");
            }
            same = false;
        }
    }
    Ok(same)
}

/// Memory of history alone: restart with the clock 50 hours ahead, so that the dedupe set
/// (ids that arrived within 49 hours) has expired and the real-time slots are evicted; one
/// event makes the next SIGTERM write a checkpoint of that state, and a second restart loads
/// it into a fresh process. Returns the server's clock and its RSS then.
fn aged_memory(s: &mut Ours) -> anyhow::Result<(ServerClock, u64)> {
    s.proc.terminate(SHUTDOWN_TIMEOUT)?;
    let aged = Timestamp::now() + SignedDuration::from_hours(AGED_HOURS);
    s.restart_with(&clock_start(aged))?;
    let one = Batch {
        body: format!(
            "{{\"id\":\"aged-marker\",\"type\":\"session_start\",\"time\":\"{}\",\"group\":\"{}\",\"session_id\":\"aged\",\"channel\":\"omIVR\",\"region\":\"us1\"}}\n",
            data::rfc3339_ms(aged.as_millisecond()),
            PROBE_GROUP
        )
        .into_bytes(),
        events: 1,
    };
    http::ingest(&s.ingest_target(), &[one], 1, 1)?;
    s.proc.terminate(SHUTDOWN_TIMEOUT)?;
    let clock = ServerClock {
        start: aged + SignedDuration::from_mins(1),
        real: Timestamp::now(),
    };
    s.restart_with(&clock_start(clock.start))?;
    std::thread::sleep(SETTLE);
    let rss_aged = s.proc.rss_bytes();
    say(format!(
        "ocp-metrics restarted 50 h later (dedupe expired, RT evicted): RSS {} MB",
        rss_aged >> 20
    ));
    Ok((clock, rss_aged))
}

/// Memory of active series: `k` new (miniApp, locale) series in a group of their own, each
/// with one invocation in each of the last twelve 5-minute slots (of the server's clock).
/// `rss_aged` is the RSS of the server before, fresh from its checkpoint.
fn series_memory(
    s: &mut Ours,
    clock: &ServerClock,
    k: usize,
    rss_aged: u64,
) -> anyhow::Result<SeriesMemory> {
    let rss_before = s.proc.rss_bytes();
    let series_batches = series_events(k, clock.now().as_millisecond())?;
    let series_run = http::ingest(&s.ingest_target(), &series_batches, CLIENTS, SERIES_BATCH)?;
    if series_run.accepted != series_run.events {
        bail!(
            "the series test had {} of {} events accepted",
            series_run.accepted,
            series_run.events
        );
    }
    std::thread::sleep(SETTLE);
    let rss_after = s.proc.rss_bytes();
    let per_series_live = rss_after.saturating_sub(rss_before) as f64 / k as f64;
    // The growth of a live process includes request buffers the allocator keeps; a fresh
    // process loaded from the checkpoint holds only the state.
    s.proc.terminate(SHUTDOWN_TIMEOUT)?;
    s.restart_with(&clock_start(clock.now()))?;
    std::thread::sleep(SETTLE);
    let per_series = s.proc.rss_bytes().saturating_sub(rss_aged) as f64 / k as f64;
    say(format!(
        "ocp-metrics: {k} extra active series ({} events): {:.0} B/series after a restart ({:.0} B/series of live growth)",
        series_run.events, per_series, per_series_live
    ));
    Ok(SeriesMemory {
        per_series,
        per_series_live,
    })
}

/// The `serve` arguments that start the server's clock at `t`.
fn clock_start(t: Timestamp) -> [String; 2] {
    ["--clock-start".to_string(), t.to_string()]
}

/// Events of `k` distinct series in their own group, twelve 5-minute slots each, one session
/// per series, in requests of [`SERIES_BATCH`] events.
fn series_events(k: usize, now_ms: i64) -> anyhow::Result<Vec<Batch>> {
    let mut lines = String::new();
    for i in 0..k {
        for j in 1..=12i64 {
            let t = now_ms - j * 300_000;
            lines.push_str(&format!(
                "{{\"id\":\"series-{i}-{j}\",\"type\":\"miniapp_end\",\"time\":\"{}\",\"started_at\":\"{}\",\"group\":\"bench-series\",\"session_id\":\"series-session-{i}\",\"channel\":\"omIVR\",\"region\":\"us1\",\"miniapp_name\":\"SeriesApp{:05}\",\"miniapp_id\":\"series-{:05}\",\"miniapp_type\":\"Intent\",\"locale\":\"{}\",\"result\":\"success\"}}\n",
                data::rfc3339_ms(t),
                data::rfc3339_ms(t - 1000),
                i / data::TAIL_LOCALES.len(),
                i / data::TAIL_LOCALES.len(),
                data::TAIL_LOCALES[i % data::TAIL_LOCALES.len()],
            ));
        }
    }
    data::read_batches(&mut lines.as_bytes(), u64::MAX, SERIES_BATCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_events_are_twelve_per_series_in_full_batches() {
        let batches = series_events(250, 1_795_600_800_000).unwrap();
        let sizes: Vec<usize> = batches.iter().map(|b| b.events).collect();
        assert_eq!(sizes, vec![1000, 1000, 1000]);
        let body: Vec<u8> = batches.iter().flat_map(|b| b.body.clone()).collect();
        let text = String::from_utf8(body).unwrap();
        assert_eq!(text.lines().count(), 3000);
        assert_eq!(
            text.matches("\"session_id\":\"series-session-249\"")
                .count(),
            12
        );
    }
}
