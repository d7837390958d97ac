//! Batch blocks: how a node that keeps its batch history in a warehouse cuts its batch counters
//! into blocks, and which of them it still holds. No IO.
//!
//! A block collects the batch counters of consecutive accepted messages. It closes, before a
//! message is applied, when the stream time has entered a new [`BLOCK_WINDOW_MS`] window since
//! the block began, or when it holds [`BLOCK_EVENTS_MAX`] events. Both depend only on the
//! stream, so every node cuts the same blocks, with the same cells, and names each by the
//! sequence of its last message: a block written by any node is the block every other node
//! holds under that name, which is what makes writes idempotent across nodes.
//!
//! The node holds the open block and the closed blocks not yet known to be in the warehouse
//! (`pending`). `written` is the name of the last block known written: the warehouse holds
//! every block up to it and memory every block after it, so a query reads the warehouse up to
//! `written` and adds the blocks held here, and no block is counted twice or missed.

use ocp_metrics_core::Event;
use ocp_metrics_core::Rollups;
use ocp_metrics_core::rollup::Horizons;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Stream milliseconds per block window: a block closes within about this long of stream time.
/// Short, so that little is pending; the writer writes a block in a few milliseconds.
pub const BLOCK_WINDOW_MS: i64 = 2_000;
/// Most events in one block: bounds one warehouse insert (and a catch-up's blocks).
pub const BLOCK_EVENTS_MAX: u64 = 100_000;

/// The blocks a node holds; see the module documentation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BatchBlocks {
    open: Block,
    /// Closed blocks not known to be written, by ascending name.
    pending: VecDeque<Block>,
    /// Every block named at or below this is in the warehouse (0: none).
    written: u64,
    /// The highest watermark heard from the warehouse's writer, possibly beyond every block
    /// closed here (a node catching up): a block that closes at or below it is dropped at once.
    heard: u64,
}

/// One block: the batch counters of the accepted messages `first..=last`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Block {
    /// The stream-time window (`stream_ms / BLOCK_WINDOW_MS`) the block began in.
    window: i64,
    /// Accepted events counted.
    events: u64,
    /// The sequence of the last accepted message: the block's name.
    last: u64,
    cells: Rollups,
}

impl Block {
    pub fn name(&self) -> u64 {
        self.last
    }

    pub fn cells(&self) -> &Rollups {
        &self.cells
    }

    pub fn events(&self) -> u64 {
        self.events
    }
}

impl BatchBlocks {
    /// Closes the open block if the stream time `stream_ms` (that of the message about to be
    /// applied) is in a later window or the block is full. Deterministic: see the module docs.
    pub fn before_message(&mut self, stream_ms: i64) {
        let window = stream_ms.div_euclid(BLOCK_WINDOW_MS);
        if self.open.events == 0 {
            self.open.window = window;
            return;
        }
        if window != self.open.window || self.open.events >= BLOCK_EVENTS_MAX {
            let closed = std::mem::take(&mut self.open);
            self.open.window = window;
            if closed.last <= self.heard {
                self.written = self.written.max(closed.last);
            } else {
                self.pending.push_back(closed);
            }
        }
    }

    /// Applies accepted message `sequence`: real-time counters into `rollups`, batch counters
    /// into the open block.
    pub fn apply(&mut self, rollups: &mut Rollups, sequence: u64, e: &Event, h: Horizons) {
        rollups.apply_split(e, h, &mut self.open.cells);
        self.open.events += 1;
        self.open.last = sequence;
    }

    /// The warehouse's writer says every block named up to `watermark` is written: forget them.
    pub fn written_through(&mut self, watermark: u64) {
        self.heard = self.heard.max(watermark);
        while let Some(b) = self.pending.front()
            && b.last <= self.heard
        {
            self.written = self.written.max(b.last);
            self.pending.pop_front();
        }
    }

    /// The last block known written: read the warehouse up to here.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The blocks held in memory: the pending ones, then the open one.
    pub fn held(&self) -> impl Iterator<Item = &Block> {
        self.pending.iter().chain(std::iter::once(&self.open))
    }

    /// The closed blocks waiting to be written, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &Block> {
        self.pending.iter()
    }

    /// Events held in closed, unwritten blocks: what a warehouse outage has piled up.
    pub fn pending_events(&self) -> u64 {
        self.pending.iter().map(|b| b.events).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks_after(messages: &[(u64, i64)]) -> BatchBlocks {
        let mut b = BatchBlocks::default();
        for &(seq, ms) in messages {
            b.before_message(ms);
            b.open.events += 1;
            b.open.last = seq;
        }
        b
    }

    fn names(b: &BatchBlocks) -> Vec<u64> {
        b.held().map(Block::name).collect()
    }

    #[test]
    fn blocks_close_on_a_new_window_and_are_forgotten_once_written() {
        let w = BLOCK_WINDOW_MS;
        let mut b = blocks_after(&[(1, 0), (2, w - 1), (3, w), (5, 3 * w), (6, 3 * w + 1)]);
        assert_eq!(names(&b), vec![2, 3, 6], "two closed, one open");
        b.written_through(2);
        assert_eq!((names(&b), b.written()), (vec![3, 6], 2));
        // A watermark beyond every closed block: the open block is dropped when it closes.
        b.written_through(6);
        assert_eq!((names(&b), b.written()), (vec![6], 3));
        b.before_message(5 * w);
        assert_eq!(b.written(), 6);
        assert_eq!(b.pending().count(), 0);
    }
}
