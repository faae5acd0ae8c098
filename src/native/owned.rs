//! One owner for every librdkafka object the crate creates: [`Owned<T>`]
//! holds a non-null pointer and calls `T`'s destroy function, named by
//! [`Destroy::DESTROY`], exactly once when dropped (rust-rdkafka's
//! `NativePtr<T: KafkaDrop>` is the model).

use std::ptr::NonNull;

use rdkafka::bindings as rd;

/// A librdkafka object type and the function that destroys one.
pub(crate) trait Destroy {
    /// librdkafka's destroy function for this type.
    const DESTROY: unsafe extern "C" fn(*mut Self);
}

/// An owned librdkafka object.
#[derive(Debug)]
pub(crate) struct Owned<T: Destroy>(NonNull<T>);

impl<T: Destroy> Owned<T> {
    /// Takes ownership of `ptr`; `None` for NULL (librdkafka's failure).
    ///
    /// # Safety
    /// `ptr` is NULL or an object the caller owns (one reference to it),
    /// which nobody else destroys.
    pub(crate) unsafe fn from_raw(ptr: *mut T) -> Option<Self> {
        NonNull::new(ptr).map(Self)
    }

    /// The raw pointer, valid while `self` lives.
    pub(crate) fn ptr(&self) -> *mut T {
        self.0.as_ptr()
    }
}

impl<T: Destroy> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: we own the object (`from_raw`'s contract) and destroy it
        // once, here.
        unsafe { (T::DESTROY)(self.0.as_ptr()) };
    }
}

// SAFETY: every type below is a librdkafka object that may be used and
// destroyed from any thread (queues, topics, events, options and group
// metadata are reference counted or immutable, or used by their one owner).
unsafe impl<T: Destroy> Send for Owned<T> {}
// SAFETY: as above; shared use goes through librdkafka's own locking.
unsafe impl<T: Destroy> Sync for Owned<T> {}

macro_rules! destroyed_by {
    ($($type:ident => $destroy:ident),* $(,)?) => {
        $(impl Destroy for rd::$type {
            const DESTROY: unsafe extern "C" fn(*mut Self) = rd::$destroy;
        })*
    };
}

destroyed_by! {
    rd_kafka_queue_t => rd_kafka_queue_destroy,
    rd_kafka_event_t => rd_kafka_event_destroy,
    rd_kafka_topic_t => rd_kafka_topic_destroy,
    rd_kafka_AdminOptions_t => rd_kafka_AdminOptions_destroy,
    rd_kafka_ConfigResource_t => rd_kafka_ConfigResource_destroy,
    rd_kafka_consumer_group_metadata_t => rd_kafka_consumer_group_metadata_destroy,
    rd_kafka_error_t => rd_kafka_error_destroy,
}
