//! The ClickHouse warehouse against a real clickhouse-server: idempotent writes (repeated,
//! partial, concurrent), reads up to a cut, with and without FINAL, folding, and retention.

use ocp_metrics_core::Family;
use ocp_metrics_warehouse::testing::TestClickHouse;
use ocp_metrics_warehouse::{
    BlockCell, ClickHouseWarehouse, Fold, PARTITION_SLOTS, ReadRequest, ReadRow, Warehouse,
    retention_horizon,
};
use std::time::Duration;

/// A UTC midnight in 2026, as a slot (unix seconds / 900; 96 slots a day).
const SLOT0: u32 = 1_780_000_000 / 900 / 96 * 96;

fn cell(series: &str, slot: u32, n: u64) -> BlockCell {
    let mut dims: [String; 7] = Default::default();
    dims[0] = "ivr".into();
    dims[1] = series.into();
    let mut counters = [0; 9];
    counters[0] = n;
    counters[1] = 2 * n;
    BlockCell {
        group: "acme".into(),
        family: Family::BatchSessions,
        dims,
        slot,
        counters,
    }
}

fn request(cut: u64) -> ReadRequest {
    ReadRequest {
        group: "acme".into(),
        family: Family::BatchSessions,
        lo: SLOT0 - 10 * PARTITION_SLOTS,
        hi: SLOT0 + 10 * PARTITION_SLOTS,
        cut,
        filters: Vec::new(),
        keep: [false, true, false, false, false, false, false],
        counters: [true; 9],
        fold: Fold::none(),
    }
}

/// Rows as `series@slot=c0/c1`, sorted, so that answers compare as text.
fn render(rows: &[ReadRow]) -> String {
    let mut lines: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}@{}={}/{}",
                r.dims[1],
                i64::from(r.slot) - i64::from(SLOT0),
                r.counters[0],
                r.counters[1]
            )
        })
        .collect();
    lines.sort();
    lines.join(" ")
}

async fn check(w: &ClickHouseWarehouse, r: ReadRequest, want: &str) {
    let rows = w.read(&r).await.expect("read");
    assert_eq!(render(&rows), want, "{r:?}");
}

fn warehouse(ch: &TestClickHouse, db: &str) -> ClickHouseWarehouse {
    ClickHouseWarehouse::new(&ch.config(db)).with_cold_after(Duration::ZERO)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_partial_and_concurrent_writes_count_once() {
    let ch = TestClickHouse::start();
    let w = warehouse(&ch, "idempotent");
    w.prepare().await.unwrap();
    w.prepare().await.expect("prepare is idempotent too");
    let b1 = vec![
        cell("a", SLOT0, 1),
        cell("b", SLOT0, 5),
        cell("a", SLOT0 + 1, 3),
    ];
    let b2 = vec![
        cell("a", SLOT0, 10),
        cell("c", SLOT0 - 3 * PARTITION_SLOTS, 7),
    ];
    // Block 1: a partial write (as after a timeout), then the whole block twice.
    w.write_block(100, b1[..1].to_vec()).await.unwrap();
    w.write_block(100, b1.clone()).await.unwrap();
    w.write_block(100, b1.clone()).await.unwrap();
    // Block 2: two writers at the same time.
    let (x, y) = tokio::join!(
        w.write_block(200, b2.clone()),
        w.write_block(200, b2.clone())
    );
    x.unwrap();
    y.unwrap();
    check(&w, request(99), "").await;
    check(&w, request(100), "a@0=1/2 a@1=3/6 b@0=5/10").await;
    check(&w, request(250), "a@0=11/22 a@1=3/6 b@0=5/10 c@-8064=7/14").await;
    // After merging, the plain (no FINAL) path answers the same.
    let done = w.maintain(0).await.unwrap();
    assert!(
        done.merged >= 1,
        "the split partitions were merged: {done:?}"
    );
    check(&w, request(250), "a@0=11/22 a@1=3/6 b@0=5/10 c@-8064=7/14").await;
    // A repeat after the merge lands in a new part: read with FINAL again, still once.
    w.write_block(200, b2.clone()).await.unwrap();
    check(&w, request(250), "a@0=11/22 a@1=3/6 b@0=5/10 c@-8064=7/14").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_dimensions_and_folds() {
    let ch = TestClickHouse::start();
    let w = warehouse(&ch, "folds");
    w.prepare().await.unwrap();
    let cells: Vec<BlockCell> = (0..8)
        .map(|i| cell(["a", "b"][i % 2], SLOT0 + i as u32, 1))
        .collect();
    w.write_block(1, cells.clone()).await.unwrap();
    let mut r = request(1);
    r.filters = vec![(1, vec!["a".into()])];
    check(&w, r.clone(), "a@0=1/2 a@2=1/2 a@4=1/2 a@6=1/2").await;
    // Hours (4 slots) at offset 0: slots 0..3 and 4..7 (SLOT0 is a multiple of 4).
    r.fold = Fold {
        unit: 4,
        periods: vec![(0, 0)],
    };
    check(&w, r.clone(), "a@0=2/4 a@4=2/4").await;
    // An offset of one slot moves the hour boundary: groups {0,1,2}, {3..6}, {7}.
    r.filters.clear();
    r.keep = [false; 7];
    r.fold = Fold {
        unit: 4,
        periods: vec![(0, 1)],
    };
    check(&w, r.clone(), "@0=3/6 @3=4/8 @7=1/2").await;
    // A period change at SLOT0 + 4: offset 0 before, 2 after.
    r.fold = Fold {
        unit: 4,
        periods: vec![(0, 0), (SLOT0 + 4, 2)],
    };
    check(&w, r, "@0=4/8 @4=2/4 @6=2/4").await;
}

/// Retention at an injected clock: the horizon a node computes from its clock's time (720 days
/// back) drops exactly the partitions wholly behind it, and moving the clock on drops the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_at_an_injected_clock_drops_only_whole_partitions_behind_the_horizon() {
    use ocp_metrics_core::{Clock, ManualClock};
    let ch = TestClickHouse::start();
    let w = warehouse(&ch, "retention");
    w.prepare().await.unwrap();
    let p = SLOT0 / PARTITION_SLOTS;
    let old = (p - 2) * PARTITION_SLOTS;
    let edge = p * PARTITION_SLOTS;
    let cells = vec![
        cell("old", old + 5, 1),
        cell("edge", edge, 1),
        cell("new", SLOT0, 1),
    ];
    w.write_block(1, cells).await.unwrap();
    // A clock 720 days and one slot after the start of partition p - 1: its horizon lies inside
    // p - 1, so only p - 2 is wholly behind it.
    let at = |slot: u32| {
        jiff::Timestamp::from_second(i64::from(slot) * 900 + 720 * 86_400 + 900).unwrap()
    };
    let clock = ManualClock::new(at((p - 1) * PARTITION_SLOTS));
    let horizon = retention_horizon(clock.now());
    assert!(horizon > (p - 1) * PARTITION_SLOTS && horizon < p * PARTITION_SLOTS);
    assert_eq!(w.maintain(horizon).await.unwrap().dropped, 1);
    let mut r = request(1);
    r.lo = old;
    let edge_at = i64::from(edge) - i64::from(SLOT0);
    check(&w, r.clone(), &format!("edge@{edge_at}=1/2 new@0=1/2")).await;
    assert_eq!(
        w.maintain(horizon).await.unwrap().dropped,
        0,
        "nothing more is behind it"
    );
    // A partition later the horizon lies inside p: p - 1 is behind it but holds nothing, and p
    // (with a slot already behind the horizon) is kept whole.
    clock.set(at(p * PARTITION_SLOTS));
    let horizon = retention_horizon(clock.now());
    assert_eq!(w.maintain(horizon).await.unwrap().dropped, 0);
    check(&w, r, &format!("edge@{edge_at}=1/2 new@0=1/2")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_is_unavailable_then_serves_again() {
    let mut ch = TestClickHouse::start();
    let w = warehouse(&ch, "faults");
    w.prepare().await.unwrap();
    w.write_block(1, vec![cell("a", SLOT0, 1)]).await.unwrap();
    ch.kill();
    let err = w
        .write_block(2, vec![cell("a", SLOT0, 1)])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unavailable"), "{err}");
    assert!(w.read(&request(2)).await.is_err());
    ch.restart();
    w.write_block(2, vec![cell("a", SLOT0, 1)]).await.unwrap();
    check(&w, request(2), "a@0=2/4").await;
}
