//! A worker's ring: the bounded lock-free queue producers push tickets into
//! and the worker drains, with the wait list for producers that find it full.
//!
//! It carries [`Ticket`]s, not records: the record itself stays in its
//! slot, so the ring moves eight bytes per record whatever its size.

use crate::delivery::ticket::Ticket;
use crate::sync::wait_list::WaitList;
use crate::sync::ArrayQueue;

/// One worker's bounded queue of tickets.
#[derive(Debug)]
pub(crate) struct Ring {
    queue: ArrayQueue<Ticket>,
    /// Notified when the worker makes room.
    pub(crate) space: WaitList,
}

impl Ring {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            queue: ArrayQueue::new(capacity),
            space: WaitList::new(),
        }
    }

    /// Pushes a ticket, or hands it back when the ring is full.
    pub(crate) fn push(&self, ticket: Ticket) -> Result<(), Ticket> {
        self.queue.push(ticket)
    }

    /// Pops the oldest ticket.
    pub(crate) fn pop(&self) -> Option<Ticket> {
        self.queue.pop()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.queue.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_round_trips_through_an_opaque() {
        let ticket = Ticket::new(0xdead_beef, 0x1234_5678);
        let back = Ticket::from_opaque(ticket.to_opaque());
        assert_eq!(back, ticket);
        assert_eq!(
            (back.index(), back.generation()),
            (0xdead_beef, 0x1234_5678)
        );
    }
}
