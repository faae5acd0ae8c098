//! Per-(topic, partition) batches a worker builds while draining its ring.
//!
//! Tickets are appended in ring order with the number of their batch; at
//! hand-over a stable counting sort lays each batch out contiguously, so
//! every batch keeps ring order (and a key's records, which share a batch
//! for "partitioner's choice", keep theirs). Both arrays are allocated once,
//! for the most records a worker can hold, so batching never allocates per
//! record or grows at a new high-water mark; only a topic/partition pair
//! never seen before adds an entry to the batch table.

use std::collections::HashMap;

use crate::delivery::ticket::Ticket;

/// One batch: a topic (index into the worker's topic cache) and a partition
/// (explicit, `UNASSIGNED`, or `STICKY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchKey {
    /// Index into the worker's topic cache.
    pub topic: u32,
    /// Explicit partition, `UNASSIGNED` (librdkafka's partitioner chooses)
    /// or `STICKY` (the worker chooses at hand-over, `native/topic.rs`).
    pub partition: i32,
    /// The partition was computed from a key's hash, from metadata that may
    /// be stale (`native/handover.rs` falls back to the partitioner).
    pub hashed: bool,
}

/// A worker's batches.
#[derive(Debug)]
pub struct Batches {
    /// Held tickets in arrival order, with their batch number.
    held: Vec<(u32, Ticket)>,
    /// The same tickets grouped by batch, at hand-over.
    sorted: Vec<Ticket>,
    keys: Vec<BatchKey>,
    /// Tickets held per batch (then, during hand-over, each batch's end).
    counts: Vec<usize>,
    /// Batches holding records, in the order they were started.
    used: Vec<u32>,
    lookup: HashMap<BatchKey, u32>,
    /// The last batch pushed to, which a run of records usually hits again.
    last: Option<(BatchKey, u32)>,
}

impl Batches {
    /// Batches for at most `max_held` records at a time.
    pub fn with_capacity(max_held: usize) -> Self {
        Self {
            held: Vec::with_capacity(max_held),
            sorted: vec![Ticket::new(0, 0); max_held],
            keys: Vec::new(),
            counts: Vec::new(),
            used: Vec::new(),
            lookup: HashMap::new(),
            last: None,
        }
    }

    /// Adds a record to its batch. Panics beyond `max_held` records: the
    /// worker never drains more than that before handing over.
    pub fn push(&mut self, key: BatchKey, ticket: Ticket) {
        assert!(
            self.held.len() < self.sorted.len(),
            "more records held than planned for"
        );
        let batch = match self.last {
            Some((last, batch)) if last == key => batch,
            _ => {
                let batch = match self.lookup.get(&key) {
                    Some(&batch) => batch,
                    None => {
                        let batch = self.keys.len() as u32;
                        self.keys.push(key);
                        self.counts.push(0);
                        self.lookup.insert(key, batch);
                        batch
                    }
                };
                self.last = Some((key, batch));
                batch
            }
        };
        let count = &mut self.counts[batch as usize];
        if *count == 0 {
            self.used.push(batch);
        }
        *count += 1;
        self.held.push((batch, ticket));
    }

    /// Records held.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Records that may still be pushed before the next hand-over.
    pub fn room(&self) -> usize {
        self.sorted.len() - self.held.len()
    }

    /// Hands every non-empty batch to `f`, oldest first. `f` returns how
    /// many tickets from the front of the batch it took; when that is not
    /// all of them, it is not called again, and the tickets it left and
    /// every later batch's stay held, in order, for the next hand-over.
    pub fn take_each(&mut self, mut f: impl FnMut(BatchKey, &[Ticket]) -> usize) {
        // Each batch's end offset in `sorted`, in the order batches started.
        let mut end = 0;
        for &batch in &self.used {
            end += self.counts[batch as usize];
            self.counts[batch as usize] = end;
        }
        // Stable scatter, back to front: each ticket goes just before its
        // batch's end, which then moves down.
        for &(batch, ticket) in self.held.iter().rev() {
            let slot = &mut self.counts[batch as usize];
            *slot -= 1;
            self.sorted[*slot] = ticket;
        }
        // `counts` now holds each batch's start.
        let total = self.held.len();
        let start_of = |counts: &[usize], used: &[u32], i: usize| {
            used.get(i).map_or(total, |&batch| counts[batch as usize])
        };
        let mut stalled = None;
        for (i, &batch) in self.used.iter().enumerate() {
            let (start, stop) = (
                start_of(&self.counts, &self.used, i),
                start_of(&self.counts, &self.used, i + 1),
            );
            let took = f(self.keys[batch as usize], &self.sorted[start..stop]);
            if took < stop - start {
                stalled = Some((i, start + took));
                break;
            }
        }
        self.held.clear();
        if let Some((first, from)) = stalled {
            // Keep what was not taken, in its batches and in order: the
            // rest of batch `first`, then every later batch whole.
            let mut i = first;
            for index in from..total {
                while index >= start_of(&self.counts, &self.used, i + 1) {
                    i += 1;
                }
                self.held.push((self.used[i], self.sorted[index]));
            }
        }
        for &batch in &self.used {
            self.counts[batch as usize] = 0;
        }
        for &(batch, _) in &self.held {
            self.counts[batch as usize] += 1;
        }
        match stalled {
            Some((first, _)) => drop(self.used.drain(..first)),
            None => self.used.clear(),
        }
    }

    /// Batch keys known (topic/partition pairs seen since the last
    /// [`Batches::forget_keys`]).
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// Forgets every batch key, so that the table does not keep every
    /// topic and partition ever seen (and topic indices may change). Only
    /// while nothing is held.
    pub fn forget_keys(&mut self) {
        assert!(self.held.is_empty(), "batch keys forgotten while held");
        self.keys.clear();
        self.counts.clear();
        self.used.clear();
        self.lookup.clear();
        self.last = None;
    }

    /// Removes and returns every held ticket (for purge).
    pub fn take_all(&mut self, mut f: impl FnMut(Ticket)) {
        for &(_, ticket) in &self.held {
            f(ticket);
        }
        for &batch in &self.used {
            self.counts[batch as usize] = 0;
        }
        self.used.clear();
        self.held.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(topic: u32, partition: i32) -> BatchKey {
        BatchKey {
            topic,
            partition,
            hashed: false,
        }
    }

    #[test]
    fn groups_by_topic_and_partition_keeping_order() {
        let mut batches = Batches::with_capacity(8);
        let t = |i| Ticket::new(i, 0);
        for (topic, partition, i) in [(0, -1, 1), (1, 2, 2), (0, -1, 3), (1, 2, 4), (0, 5, 5)] {
            batches.push(key(topic, partition), t(i));
        }
        assert_eq!(batches.held(), 5);
        let mut seen = Vec::new();
        batches.take_each(|k, tickets| {
            seen.push((k, tickets.to_vec()));
            tickets.len()
        });
        assert_eq!(
            seen,
            vec![
                (key(0, -1), vec![t(1), t(3)]),
                (key(1, 2), vec![t(2), t(4)]),
                (key(0, 5), vec![t(5)]),
            ]
        );
        assert_eq!(batches.held(), 0);
        // Reused: the next round starts clean and keeps order again.
        for i in 6..14 {
            batches.push(key(i % 2, -1), t(i));
        }
        let mut seen = Vec::new();
        batches.take_each(|k, tickets| {
            seen.push((k.topic, tickets.to_vec()));
            tickets.len()
        });
        assert_eq!(
            seen,
            vec![
                (0, vec![t(6), t(8), t(10), t(12)]),
                (1, vec![t(7), t(9), t(11), t(13)])
            ]
        );
    }

    #[test]
    fn a_stalled_hand_over_keeps_the_rest_in_order() {
        let mut batches = Batches::with_capacity(16);
        let t = |i| Ticket::new(i, 0);
        for (partition, i) in [(0, 1), (1, 2), (0, 3), (2, 4), (1, 5), (0, 6), (2, 7)] {
            batches.push(key(0, partition), t(i));
        }
        // Batch 0 goes whole; batch 1 stops after its first ticket.
        let mut calls = 0;
        batches.take_each(|k, tickets| {
            calls += 1;
            match k.partition {
                0 => tickets.len(),
                _ => 1,
            }
        });
        assert_eq!(calls, 2, "no call after a stall");
        assert_eq!(batches.held(), 3);
        // New records join their batches after what was kept.
        batches.push(key(0, 1), t(8));
        batches.push(key(0, 0), t(9));
        let mut seen = Vec::new();
        batches.take_each(|k, tickets| {
            seen.push((k.partition, tickets.to_vec()));
            tickets.len()
        });
        assert_eq!(
            seen,
            vec![
                (1, vec![t(5), t(8)]),
                (2, vec![t(4), t(7)]),
                (0, vec![t(9)]),
            ]
        );
        assert_eq!(batches.held(), 0);
    }

    #[test]
    fn take_all_empties_in_arrival_order() {
        let mut batches = Batches::with_capacity(4);
        for i in 0..3 {
            batches.push(key(i, -1), Ticket::new(i, 0));
        }
        let mut taken = Vec::new();
        batches.take_all(|t| taken.push(t.index()));
        assert_eq!(taken, vec![0, 1, 2]);
        let mut any = false;
        batches.take_each(|_, tickets| {
            any = true;
            tickets.len()
        });
        assert!(!any);
    }
}
