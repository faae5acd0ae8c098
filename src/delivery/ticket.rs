//! The ticket: a delivery slot's index and generation packed into a `u64`,
//! what travels through the rings and through librdkafka's per-message
//! opaque instead of the record.

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
