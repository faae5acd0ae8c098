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
//! - With tokens from the application's OAUTHBEARER provider, a producer
//!   that never had a token cannot even try a broker: librdkafka raises
//!   the provider's failure as `_AUTHENTICATION` and connects nowhere, so
//!   no `_ALL_BROKERS_DOWN` comes. That failure purges the same way while
//!   no token was ever accepted (`native/oauth.rs` says when one is).
//! - A refusal that comes while some broker is still up purges nothing:
//!   with one broker's certificate wrong, the others still take records.
//! - Records handed over while the refusal stands are purged right after
//!   their hand-over (the worker asks, [`Reachability::shut_out`]), so they
//!   fail at once too. New credentials (`set_sasl_credentials`) lift the
//!   refusal for good: later records go to librdkafka and wait there, as
//!   librdkafka has them wait, until a broker lets the producer in or their
//!   `message.timeout.ms` ends. A refusal of the old credentials may still
//!   come from an attempt that started before the change, followed by
//!   librdkafka's word that every broker is down again; it must not fail
//!   records the new credentials would deliver, and nothing tells it from
//!   a refusal of the new ones.
//! - Once a record was delivered, refusals purge nothing any more: a
//!   producer that was let in and is refused later is most likely in the
//!   middle of a credential rotation (the broker's password changed before
//!   the producer's, or a re-authentication raced it), and its records
//!   wait in librdkafka, as librdkafka would have them wait, until the new
//!   credentials let it in again or `message.timeout.ms` fails them.
//!
//! The state changes on `rdk:bg`, which serves both the error events and
//! the delivery reports, and is read by the workers after each hand-over.

use std::sync::atomic::Ordering::Relaxed;

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
    /// Tokens come from the application's provider, and none was accepted
    /// yet: no broker can be tried.
    tokenless: AtomicBool,
    /// New credentials were given: no refusal purges any more.
    renewed: AtomicBool,
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

    /// Whether the producer is shut out: no broker ever let it in, one
    /// refused it, and every broker is down (or, with a token provider, no
    /// token was accepted yet). Cheap once a record was delivered: one load.
    pub(crate) fn shut_out(&self) -> bool {
        // Relaxed: written on `rdk:bg` (and `tokenless` by the token thread,
        // the refusal by a caller of `set_sasl_credentials`); a stale value
        // only moves a purge to the next hand-over or refusal, or fails
        // records of a producer never let in with the refusal it just lifted.
        !self.let_in.load(Relaxed)
            && !self.renewed.load(Relaxed)
            && (self.all_down.load(Relaxed) || self.tokenless.load(Relaxed))
            && self.refused.lock().is_some()
    }

    /// New credentials: the refusal no longer stands, and no later one
    /// purges (a refusal of the old credentials may still come from an
    /// attempt started before the change). Records then wait for the new
    /// credentials to be tried, as librdkafka would have them wait.
    pub(crate) fn credentials_changed(&self) {
        // Relaxed: see `shut_out`.
        self.renewed.store(true, Relaxed);
    }

    /// Tokens will come from the application's provider: until one is
    /// accepted, no broker can be tried.
    pub(crate) fn expect_tokens(&self) {
        // Relaxed: see `shut_out`.
        self.tokenless.store(true, Relaxed);
    }

    /// librdkafka accepted a token from the provider.
    pub(crate) fn token_accepted(&self) {
        // Relaxed: see `shut_out`.
        self.tokenless.store(false, Relaxed);
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
    fn new_credentials_lift_the_refusal_even_if_a_stale_one_follows() {
        let r = Reachability::default();
        r.on_error(RDKafkaErrorCode::Authentication, "old password");
        r.on_error(RDKafkaErrorCode::AllBrokersDown, "1/1 brokers are down");
        assert!(r.shut_out());
        r.credentials_changed();
        assert!(!r.on_error(RDKafkaErrorCode::Authentication, "old password, late"));
        assert!(!r.shut_out());
        // The stale attempt's broker goes down again: still no purge.
        assert!(!r.on_error(RDKafkaErrorCode::AllBrokersDown, "1/1 brokers are down"));
        assert!(!r.shut_out());
        assert_eq!(r.purged(Error::Purged), Error::Purged);
    }

    #[test]
    fn a_provider_failure_purges_until_a_token_is_accepted() {
        let r = Reachability::default();
        r.expect_tokens();
        assert!(r.on_error(RDKafkaErrorCode::Authentication, "no token"));
        r.token_accepted();
        assert!(!r.on_error(RDKafkaErrorCode::Authentication, "no token"));
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
