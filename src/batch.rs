//! Per-(topic, partition) batches a worker builds while draining its ring.
//!
//! Records keep their ring order within a batch. Records of one key (no
//! explicit partition) share a batch for "partitioner's choice", so their
//! order survives too. All vectors are kept and reused: after warm-up,
//! batching allocates nothing.

use std::collections::HashMap;

use crate::ring::Ticket;

/// The records for one topic and partition, in order.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Index into the worker's topic cache.
    pub(crate) topic: u32,
    /// Explicit partition, or `UNASSIGNED`.
    pub(crate) partition: i32,
    pub(crate) tickets: Vec<Ticket>,
}

/// A worker's batches.
#[derive(Debug, Default)]
pub(crate) struct Batches {
    batches: Vec<Batch>,
    lookup: HashMap<(u32, i32), usize>,
    /// Batches holding records, in the order they were started.
    used: Vec<usize>,
    /// The last batch pushed to, which a run of records usually hits again.
    last: Option<((u32, i32), usize)>,
    held: usize,
}

impl Batches {
    /// Adds a record to its batch.
    pub(crate) fn push(&mut self, topic: u32, partition: i32, ticket: Ticket) {
        let key = (topic, partition);
        let index = match self.last {
            Some((last, index)) if last == key => index,
            _ => {
                let index = *self.lookup.entry(key).or_insert_with(|| {
                    self.batches.push(Batch {
                        topic,
                        partition,
                        tickets: Vec::new(),
                    });
                    self.batches.len() - 1
                });
                self.last = Some((key, index));
                index
            }
        };
        let batch = &mut self.batches[index];
        if batch.tickets.is_empty() {
            self.used.push(index);
        }
        batch.tickets.push(ticket);
        self.held += 1;
    }

    /// Records held.
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// Hands every non-empty batch to `f`, oldest first, and empties them.
    pub(crate) fn drain(&mut self, mut f: impl FnMut(&Batch)) {
        for &index in &self.used {
            let batch = &mut self.batches[index];
            f(batch);
            batch.tickets.clear();
        }
        self.used.clear();
        self.held = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_topic_and_partition_keeping_order() {
        let mut batches = Batches::default();
        let t = |i| Ticket::new(i, 0);
        for (topic, partition, i) in [(0, -1, 1), (1, 2, 2), (0, -1, 3), (1, 2, 4), (0, 5, 5)] {
            batches.push(topic, partition, t(i));
        }
        assert_eq!(batches.held(), 5);
        let mut seen = Vec::new();
        batches.drain(|b| seen.push((b.topic, b.partition, b.tickets.clone())));
        assert_eq!(
            seen,
            vec![
                (0, -1, vec![t(1), t(3)]),
                (1, 2, vec![t(2), t(4)]),
                (0, 5, vec![t(5)]),
            ]
        );
        assert_eq!(batches.held(), 0);
        let mut again = 0;
        batches.drain(|_| again += 1);
        assert_eq!(again, 0);
    }
}
