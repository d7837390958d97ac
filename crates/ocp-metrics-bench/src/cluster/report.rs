//! The cluster benchmark's Markdown report: one column per configuration, then the queries one
//! by one, CPU during ingest, catch-up of a wiped node and memory per group.

use super::{ConfigResult, Results};
use crate::report::num;
use crate::stats::Summary;
use std::fmt::Write;

const MIB: f64 = 1024.0 * 1024.0;

/// The whole report.
pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Cluster mode against embedded mode\n");
    let _ = writeln!(s, "Command: `{}`\n", r.command);
    let _ = writeln!(
        s,
        "{} events ({} distinct) of group `{}`, generated {}; {} producers, {} events per request; {} timed runs of each query on each node.\n",
        r.data.lines,
        r.data.unique,
        crate::data::GROUP,
        r.data.generated_at,
        r.producers,
        r.batch_size,
        r.iterations
    );
    let _ = writeln!(s, "Machine: {}\n", r.machine);
    let _ = writeln!(s, "Versions: {}; {}.\n", r.version, r.nats_server);
    main_table(&mut s, &r.configs);
    query_table(&mut s, &r.configs);
    cpu_table(&mut s, &r.configs);
    catch_up_table(&mut s, &r.configs);
    memory(&mut s, &r.configs);
    let _ = writeln!(
        s,
        "\nVerdict: {}",
        if r.ok {
            "every count right, every node's answers equal to node 0's, the wiped nodes' too."
        } else {
            "FAILED: a count or an answer was wrong (see the rows above)."
        }
    );
    s
}

fn lat(x: &Summary) -> String {
    format!("{:.2} / {:.2}", x.p50, x.p99)
}

fn mb(b: u64) -> String {
    format!("{:.0}", b as f64 / MIB)
}

fn row(s: &mut String, name: &str, cells: impl Iterator<Item = String>) {
    let cells: Vec<String> = cells.collect();
    let _ = writeln!(s, "| {name} | {} |", cells.join(" | "));
}

fn main_table(s: &mut String, c: &[ConfigResult]) {
    let _ = writeln!(s, "### Measured\n");
    row(s, "", c.iter().map(|x| x.label.to_string()));
    row(s, "---", c.iter().map(|_| "---:".to_string()));
    row(
        s,
        "ingest, events/s",
        c.iter().map(|x| num(x.ingest.events_per_second)),
    );
    row(
        s,
        "ack latency p50 / p99, ms",
        c.iter().map(|x| lat(&x.ingest.latency)),
    );
    row(
        s,
        "requests answered 429/503 and sent again",
        c.iter().map(|x| x.ingest.retried.to_string()),
    );
    row(
        s,
        "accepted + duplicates = sent, none refused",
        c.iter().map(|x| {
            format!(
                "{} ({} + {} of {})",
                if x.counts_ok { "yes" } else { "**NO**" },
                x.ingest.accepted,
                x.ingest.duplicates,
                x.ingest.events
            )
        }),
    );
    row(
        s,
        "stream messages after ingest (one per distinct event)",
        c.iter().map(|x| {
            if x.replicas == 0 {
                "-".into()
            } else {
                format!("{:.0}", x.stream_last_sequence)
            }
        }),
    );
    row(
        s,
        "every node applied the stream, ms after the last 200",
        c.iter().map(|x| {
            if x.replicas == 0 {
                "-".into()
            } else {
                format!("{:.0}", x.converged_after_ingest_ms)
            }
        }),
    );
    row(
        s,
        "query latency p50 / p99, ms (suite, all nodes)",
        c.iter().map(|x| lat(&x.query_all)),
    );
    row(
        s,
        "answers equal to node 0's (bytes)",
        c.iter().map(|x| {
            if x.nodes == 1 {
                "-".into()
            } else {
                format!("{} of {}", x.answers_equal, x.answers_compared)
            }
        }),
    );
    row(
        s,
        "node 0's answers equal to the embedded node's (same requests)",
        c.iter().map(|x| {
            x.same_as_embedded
                .map_or("-".into(), |(e, n)| format!("{e} of {n}"))
        }),
    );
    row(
        s,
        "freshness on the writer, median / p99 ms",
        c.iter().map(|x| lat(&x.fresh_same_node)),
    );
    row(
        s,
        "freshness on another node, median / p99 ms",
        c.iter()
            .map(|x| x.fresh_other_node.as_ref().map_or("-".into(), lat)),
    );
    row(
        s,
        "RSS per node, idle -> loaded, MB",
        c.iter().map(|x| {
            x.rss_node_idle
                .iter()
                .zip(&x.rss_node_loaded)
                .map(|(i, l)| format!("{} -> {}", mb(*i), mb(*l)))
                .collect::<Vec<_>>()
                .join(", ")
        }),
    );
    row(
        s,
        "RSS per nats-server after ingest, MB",
        c.iter().map(|x| {
            if x.rss_nats.is_empty() {
                "-".into()
            } else {
                x.rss_nats
                    .iter()
                    .map(|b| mb(*b))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }),
    );
    row(
        s,
        "node ready on an empty store, ms",
        c.iter().map(|x| {
            x.ready_empty_ms
                .iter()
                .map(|m| format!("{m:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        }),
    );
    let _ = writeln!(
        s,
        "\nFreshness: time from the 200 of a one-event request to the event counted by a real-time query ({} probes per configuration, the writer moving round-robin over the nodes; \"another node\" is the next one).\n",
        c.first().map_or(0, |x| x.fresh_same_node.n)
    );
}

fn query_table(s: &mut String, c: &[ConfigResult]) {
    let _ = writeln!(
        s,
        "### Query latency p50 / p99 by query, ms (all nodes pooled)\n"
    );
    row(s, "query", c.iter().map(|x| x.label.to_string()));
    row(s, "---", c.iter().map(|_| "---:".to_string()));
    let Some(first) = c.first() else { return };
    for (k, q) in first.queries.iter().enumerate() {
        row(
            s,
            q.name,
            c.iter()
                .map(|x| x.queries.get(k).map_or("-".into(), |q| lat(&q.pooled))),
        );
    }
    let _ = writeln!(s);
}

fn cpu_table(s: &mut String, c: &[ConfigResult]) {
    let _ = writeln!(
        s,
        "### CPU during ingest, in cores (the machine has {})\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(s, "| configuration | process | cores |");
    let _ = writeln!(s, "| --- | --- | ---: |");
    for x in c {
        for u in &x.cpu_during_ingest {
            let _ = writeln!(s, "| {} | {} | {:.2} |", x.label, u.process, u.cores);
        }
    }
    let _ = writeln!(s);
}

fn catch_up_table(s: &mut String, c: &[ConfigResult]) {
    let _ = writeln!(
        s,
        "### Catch-up: a node started on a cluster that holds the data\n"
    );
    let _ = writeln!(
        s,
        "| configuration | node: what was done | ready after, ms | catch_up_seconds | start sequence / stream end | events replayed | replay events/s | s per million events | RSS after, MB | answers equal |"
    );
    let _ = writeln!(
        s,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for x in c {
        for k in &x.catch_up {
            // A snapshot that covers the whole stream leaves nothing to replay: no rate.
            let replayed = k.replayed_events > 0.0;
            let _ = writeln!(
                s,
                "| {} | {}: {} | {:.0} | {:.2} | {:.0} / {:.0} | {:.0} | {} | {} | {} | {} |",
                x.label,
                k.node,
                k.what,
                k.ready_ms,
                k.catch_up_seconds,
                k.start_sequence,
                k.stream_last_sequence,
                k.replayed_events,
                if replayed {
                    num(k.replay_events_per_second)
                } else {
                    "-".into()
                },
                if replayed {
                    format!("{:.2}", k.seconds_per_million_events)
                } else {
                    "-".into()
                },
                mb(k.rss_after_bytes),
                if k.answers_equal { "yes" } else { "**NO**" }
            );
        }
    }
    let _ = writeln!(s);
}

fn memory(s: &mut String, c: &[ConfigResult]) {
    let _ = writeln!(s, "### Memory per group (tenant)\n");
    let _ = writeln!(
        s,
        "| configuration | groups with data | series | (loaded - idle RSS) per group, MB |"
    );
    let _ = writeln!(s, "| --- | ---: | ---: | ---: |");
    for x in c {
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.0} | {:.1} |",
            x.label,
            x.groups,
            x.series,
            x.rss_per_group_bytes / MIB
        );
    }
    for x in c {
        let Some(t) = &x.tenants else { continue };
        let _ = writeln!(
            s,
            "\nSmall groups ({}): {} groups of {} events each added to the node (copies of consecutive recent events, each in a group of its own; {} accepted, {} refused, at {} events/s); groups {:.0} -> {:.0}, RSS {} -> {} MB: **{:.0} KB per group**.",
            x.label,
            t.groups_added,
            t.events_per_group,
            t.accepted,
            t.rejected,
            num(t.events_per_second),
            t.groups_before,
            t.groups_after,
            mb(t.rss_before_bytes),
            mb(t.rss_after_bytes),
            t.rss_per_group_bytes / 1024.0
        );
    }
    let _ = writeln!(
        s,
        "\nThe data is one large group, so this is what one tenant with all these events costs a node (its rollups and dedupe set, plus what the allocator kept from ingest), not a fixed cost per tenant."
    );
}
