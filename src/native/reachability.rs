//! Failing records promptly when the cluster refuses a producer it never
//! let in (a wrong password, an untrusted certificate, a host-name
//! mismatch).
//!
//! librdkafka treats an authentication or TLS failure like any other
//! failed connection: it keeps the records and reconnects for ever, so
//! without this each record of a misconfigured producer would wait for
//! `message.timeout.ms` (five minutes by default) and then fail with a bare
//! timeout. Java's producer fails them at once with the authentication
//! error; so do we, with the error librdkafka gave (its code,
//! `Authentication` or `SSL`, and its text, which names the broker and the
//! reason but never a password):
//!
//! - librdkafka raises the failure as an error event (`_AUTHENTICATION` or
//!   `_SSL`), and `_ALL_BROKERS_DOWN` once no broker is up. When both are
//!   known, and the producer never delivered a record, every broker
//!   refused it or is down, and none ever let it in: the records librdkafka
//!   holds cannot go anywhere. They are purged from its queues then
//!   (`rd_kafka_purge`, queued records only, without waiting), and each
//!   purged record fails with the refusal instead of `Purged`.
//! - A refusal that comes while some broker is still up purges nothing:
//!   with one broker's certificate wrong, the others still take records.
//! - Records produced later go to librdkafka as usual: if the cluster
//!   still refuses the producer, they fail when librdkafka raises the
//!   refusal again (it repeats an identical connection error every 30 s,
//!   each reconnect backoff at most `reconnect.backoff.max.ms`), or at
//!   their timeout. If it lets the producer in (the password was fixed, by
//!   `set_sasl_credentials` say), they are delivered.
//! - Once a record was delivered, refusals purge nothing any more: a
//!   producer that was let in and is refused later is most likely in the
//!   middle of a credential rotation (the broker's password changed before
//!   the producer's, or a re-authentication raced it), and its records
//!   wait in librdkafka, as librdkafka would have them wait, until the new
//!   credentials let it in again or `message.timeout.ms` fails them.
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
    /// A record was delivered: some broker let the producer in once.
    let_in: AtomicBool,
    /// librdkafka said all brokers are down.
    all_down: AtomicBool,
    /// The latest authentication or TLS refusal.
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
                self.shut_out()
            }
            RDKafkaErrorCode::AllBrokersDown => {
                // Relaxed: only `rdk:bg` reads and writes it.
                self.all_down.store(true, Relaxed);
                self.shut_out()
            }
            _ => false,
        }
    }

    /// Whether every broker is down, one refused the producer, and none
    /// ever let it in.
    fn shut_out(&self) -> bool {
        // Relaxed: as above.
        !self.let_in.load(Relaxed) && self.all_down.load(Relaxed) && self.refused.lock().is_some()
    }

    /// What a purged record fails with: the refusal while it shuts the
    /// producer out.
    pub(crate) fn purged(&self, error: Error) -> Error {
        if error != Error::Purged || !self.shut_out() {
            return error;
        }
        self.refused.lock().clone().unwrap_or(error)
    }

    /// A record was delivered: a broker let the producer in.
    pub(crate) fn on_delivered(&self) {
        // Relaxed: as above. Read first: the common case writes nothing.
        if !self.let_in.load(Relaxed) {
            self.let_in.store(true, Relaxed);
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
    fn once_a_record_was_delivered_refusals_purge_nothing() {
        let r = Reachability::default();
        r.on_error(
            RDKafkaErrorCode::Authentication,
            "SASL authentication error",
        );
        r.on_error(RDKafkaErrorCode::AllBrokersDown, "1/1 brokers are down");
        r.on_delivered();
        assert_eq!(r.purged(Error::Purged), Error::Purged);
        assert!(!r.on_error(RDKafkaErrorCode::Authentication, "again"));
        assert!(!r.on_error(RDKafkaErrorCode::AllBrokersDown, "again"));
    }
}
