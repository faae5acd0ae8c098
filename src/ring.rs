//! A worker's ring: the bounded lock-free queue producers push tickets into
//! and the worker drains, with the wait list for producers that find it full.
//!
//! A ticket is the delivery slot's index and generation packed into a `u64`
//! (see [`Ticket`]); the record itself stays in its slot, so the ring moves
//! eight bytes per record whatever the record's size.

use crate::loom::ArrayQueue;
use crate::notify::Notify;

/// A slot index and its generation: what travels through rings and through
/// librdkafka's per-message opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

impl Ticket {
    /// The ticket of generation `generation` of slot `index`.
    pub fn new(index: u32, generation: u32) -> Self {
        Ticket((u64::from(generation) << 32) | u64::from(index))
    }

    /// The slot index.
    pub fn index(self) -> u32 {
        self.0 as u32
    }

    /// The slot generation.
    pub fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The ticket as librdkafka's message opaque.
    pub fn to_opaque(self) -> *mut std::ffi::c_void {
        const _: () = assert!(usize::BITS >= 64, "tickets travel in a pointer");
        self.0 as usize as *mut std::ffi::c_void
    }

    /// The ticket back from librdkafka's message opaque.
    pub fn from_opaque(opaque: *mut std::ffi::c_void) -> Self {
        Ticket(opaque as usize as u64)
    }
}

/// One worker's bounded queue of tickets.
#[derive(Debug)]
pub(crate) struct Ring {
    queue: ArrayQueue<Ticket>,
    /// Notified when the worker makes room.
    pub(crate) space: Notify,
}

impl Ring {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            queue: ArrayQueue::new(capacity),
            space: Notify::new(),
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
