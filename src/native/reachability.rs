//! Failing records promptly when the cluster refuses us (a wrong password,
//! an untrusted certificate, a host-name mismatch).
//!
//! librdkafka treats an authentication or TLS failure like any other
//! failed connection: it keeps the records and reconnects for ever, so
//! without this each record would wait for `message.timeout.ms` (five
//! minutes by default) and then fail with a bare timeout. Java's producer
//! fails them at once with the authentication error; so do we, with the
//! error librdkafka gave (its code, `Authentication` or `SSL`, and its text,
//! which names the broker and the reason but never a password):
//!
//! - librdkafka raises the failure as an error event (`_AUTHENTICATION` or
//!   `_SSL`), and `_ALL_BROKERS_DOWN` once no broker is up. When both are
//!   known, and nothing was delivered since, every broker refused us or is
//!   down: the records librdkafka holds cannot go anywhere. They are purged
//!   from its queues then (`rd_kafka_purge`, queued records only, without
//!   waiting), and each purged record fails with the refusal instead of
//!   `Purged`.
//! - A refusal that comes while some broker is still up purges nothing:
//!   with one broker's certificate wrong, the others still take records.
//! - Records produced later go to librdkafka as usual: if the cluster
//!   still refuses us, they fail when librdkafka raises the refusal again
//!   (it repeats an identical connection error every 30 s, each reconnect
//!   backoff at most `reconnect.backoff.max.ms`), or at their timeout. If
//!   it lets us in (the password was fixed), they are delivered; the first
//!   delivery forgets the refusal.
//!
//! Everything here runs on `rdk:bg`, which serves both the error events and
//! the delivery reports; the atomics only make the state shareable.

use std::sync::atomic::Ordering::Relaxed;

use rdkafka::bindings as rd;
use rdkafka::types::RDKafkaErrorCode;

use crate::error::Error;
use crate::sync::{AtomicBool, Mutex};

/// What librdkafka last said about reaching the cluster.
#[derive(Debug, Default)]
pub(crate) struct Reachability {
    /// librdkafka said all brokers are down, and nothing was delivered since.
    all_down: AtomicBool,
    /// The latest authentication or TLS refusal since the last delivery.
    refused: Mutex<Option<Error>>,
}

impl Reachability {
    /// Notes a client-wide error event; `true` when the records librdkafka
    /// holds should be purged now.
    pub(crate) fn on_error(&self, code: RDKafkaErrorCode, reason: &str) -> bool {
        match code {
            RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL => {
                *self.refused.lock() = Some(Error::Kafka {
                    code,
                    detail: Some(reason.to_owned()),
                });
                // Relaxed: only `rdk:bg` reads and writes it.
                self.all_down.load(Relaxed)
            }
            RDKafkaErrorCode::AllBrokersDown => {
                // Relaxed: as above.
                self.all_down.store(true, Relaxed);
                self.refused.lock().is_some()
            }
            _ => false,
        }
    }

    /// What a purged record fails with: the refusal while it stands.
    pub(crate) fn purged(&self, error: Error) -> Error {
        // Relaxed: as above.
        if error != Error::Purged || !self.all_down.load(Relaxed) {
            return error;
        }
        self.refused.lock().clone().unwrap_or(error)
    }

    /// A record was delivered: a broker let us in.
    pub(crate) fn on_delivered(&self) {
        // Relaxed: as above. Read first: the common case writes nothing.
        if self.all_down.load(Relaxed) {
            self.all_down.store(false, Relaxed);
            *self.refused.lock() = None;
        }
    }
}

/// Purges the records queued in librdkafka (not those in flight), without
/// waiting; each is reported through the delivery-report path.
///
/// # Safety
/// `rk` is a live producer handle.
pub(crate) unsafe fn purge_queued(rk: *mut rd::rd_kafka_t) {
    let flags = rd::RD_KAFKA_PURGE_F_QUEUE | rd::RD_KAFKA_PURGE_F_NON_BLOCKING;
    // SAFETY: live handle (function contract); purge is thread-safe and,
    // non-blocking, waits for no other thread.
    let err = unsafe { rd::rd_kafka_purge(rk, flags) };
    if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        log::warn!("rd_kafka_purge failed: {err:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal() -> Error {
        Error::Kafka {
            code: RDKafkaErrorCode::Authentication,
            detail: Some("SASL authentication error".into()),
        }
    }

    #[test]
    fn a_refusal_purges_only_once_every_broker_is_down_in_either_order() {
        let r = Reachability::default();
        assert!(!r.on_error(
            RDKafkaErrorCode::Authentication,
            "SASL authentication error"
        ));
        assert!(r.on_error(RDKafkaErrorCode::AllBrokersDown, "1/1 brokers are down"));
        assert_eq!(r.purged(Error::Purged), refusal());

        let r = Reachability::default();
        assert!(!r.on_error(RDKafkaErrorCode::AllBrokersDown, "1/1 brokers are down"));
        assert!(r.on_error(
            RDKafkaErrorCode::Authentication,
            "SASL authentication error"
        ));
        assert_eq!(r.purged(Error::Purged), refusal());
    }

    #[test]
    fn brokers_down_without_a_refusal_purge_nothing_and_other_errors_stay() {
        let r = Reachability::default();
        assert!(!r.on_error(RDKafkaErrorCode::AllBrokersDown, "1/1 brokers are down"));
        assert!(!r.on_error(
            RDKafkaErrorCode::BrokerTransportFailure,
            "Connection refused"
        ));
        assert_eq!(r.purged(Error::Purged), Error::Purged);
        r.on_error(RDKafkaErrorCode::SSL, "certificate verify failed");
        let timeout = Error::kafka(RDKafkaErrorCode::MessageTimedOut);
        assert_eq!(r.purged(timeout.clone()), timeout);
    }

    #[test]
    fn a_delivery_forgets_the_refusal() {
        let r = Reachability::default();
        r.on_error(
            RDKafkaErrorCode::Authentication,
            "SASL authentication error",
        );
        r.on_error(RDKafkaErrorCode::AllBrokersDown, "1/1 brokers are down");
        r.on_delivered();
        assert_eq!(r.purged(Error::Purged), Error::Purged);
        assert!(!r.on_error(RDKafkaErrorCode::Authentication, "again"));
    }
}
