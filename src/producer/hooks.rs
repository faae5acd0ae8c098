//! The hooks thread (`aioproducer-hooks`): runs the application's hooks
//! for client errors, statistics and throttling (`events.rs`).
//!
//! librdkafka raises all three as events on `rdk:bg`, the thread that also
//! completes every record: a hook that blocked there would hold up every
//! delivery report. So `rdk:bg` only puts each event on a bounded queue
//! ([`QUEUE`] events) and goes on, and this thread runs the hooks, in the
//! order the events came. When the queue is full (hooks slower than the
//! events), the event is dropped and counted
//! (`Stats::hook_events_dropped`) rather than made to wait. The typed part
//! of the statistics is parsed here too, off `rdk:bg`. A panic in a hook is
//! caught and logged. The thread stops after the librdkafka handle is
//! destroyed (no event can come then), once it has run what was queued.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::events::{BrokerStatistics, ClientError, HookSet, Statistics, Throttle};

/// Events queued for the hooks at most.
const QUEUE: usize = 1024;

pub(crate) enum Event {
    Error(ClientError),
    /// librdkafka's JSON and the producer's counters at that moment.
    Statistics(String, Box<crate::stats::Stats>),
    Throttle(Throttle),
    Stop,
}

/// `rdk:bg`'s way to the hooks thread.
#[derive(Debug)]
pub(crate) struct Hooks {
    sender: SyncSender<Event>,
    dropped: AtomicU64,
    wants_statistics: bool,
    wants_throttle: bool,
    wants_errors: bool,
}

impl Hooks {
    /// Starts the hooks thread for `set`.
    pub(crate) fn start(set: HookSet) -> std::io::Result<(Self, JoinHandle<()>)> {
        let (sender, receiver) = sync_channel(QUEUE);
        let hooks = Self {
            sender,
            dropped: AtomicU64::new(0),
            wants_statistics: set.statistics.is_some(),
            wants_throttle: set.throttle.is_some(),
            wants_errors: set.error.is_some(),
        };
        let thread = std::thread::Builder::new()
            .name("aioproducer-hooks".into())
            .spawn(move || serve(&set, &receiver))?;
        Ok((hooks, thread))
    }

    /// Queues `event` for the hooks; never waits.
    fn send(&self, event: Event) {
        match self.sender.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                // Relaxed: a counter read only for statistics.
                if self.dropped.fetch_add(1, Relaxed) == 0 {
                    log::warn!("the hooks are slower than librdkafka's events: dropping events");
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    pub(crate) fn error(&self, error: ClientError) {
        if self.wants_errors {
            self.send(Event::Error(error));
        }
    }

    /// Whether a statistics hook is set (the snapshot of the producer's
    /// counters is taken only then).
    pub(crate) fn wants_statistics(&self) -> bool {
        self.wants_statistics
    }

    pub(crate) fn statistics(&self, json: String, producer: crate::stats::Stats) {
        self.send(Event::Statistics(json, Box::new(producer)));
    }

    pub(crate) fn throttle(&self, throttle: Throttle) {
        if self.wants_throttle {
            self.send(Event::Throttle(throttle));
        }
    }

    /// Events dropped so far.
    pub(crate) fn dropped(&self) -> u64 {
        // Relaxed: as above.
        self.dropped.load(Relaxed)
    }

    /// Tells the thread to stop once it has run what is queued. Waits for
    /// room in the queue: call it once no event can come any more.
    pub(crate) fn stop(&self) {
        let _ = self.sender.send(Event::Stop);
    }
}

fn serve(set: &HookSet, receiver: &Receiver<Event>) {
    while let Ok(event) = receiver.recv() {
        // `false` once told to stop.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match event {
                Event::Error(error) => {
                    if let Some(hook) = &set.error {
                        hook(&error);
                    }
                }
                Event::Statistics(json, producer) => {
                    if let Some(hook) = &set.statistics {
                        hook(&typed(json, *producer));
                    }
                }
                Event::Throttle(throttle) => {
                    if let Some(hook) = &set.throttle {
                        hook(&throttle);
                    }
                }
                Event::Stop => return false,
            }
            true
        }));
        match ran {
            Ok(false) => return,
            Ok(true) => {}
            Err(_) => log::error!("a hook panicked (caught; the next events still run)"),
        }
    }
}

/// librdkafka's statistics with their typed subset (left at zero where the
/// JSON does not parse).
fn typed(json: String, producer: crate::stats::Stats) -> Statistics {
    let micros = |us: i64| Duration::from_micros(u64::try_from(us).unwrap_or(0));
    let parsed: Option<rdkafka::statistics::Statistics> = serde_json::from_str(&json)
        .map_err(|e| log::warn!("librdkafka's statistics did not parse: {e}"))
        .ok();
    let (queued_messages, queued_bytes, mut brokers) = match &parsed {
        None => (0, 0, Vec::new()),
        Some(s) => (
            s.msg_cnt,
            s.msg_size,
            s.brokers
                .values()
                .map(|b| BrokerStatistics {
                    name: b.name.clone(),
                    id: b.nodeid,
                    state: b.state.clone(),
                    rtt_avg: b.rtt.as_ref().map_or(Duration::ZERO, |w| micros(w.avg)),
                    rtt_p99: b.rtt.as_ref().map_or(Duration::ZERO, |w| micros(w.p99)),
                    throttle_avg: b
                        .throttle
                        .as_ref()
                        .map_or(Duration::ZERO, |w| micros(w.avg)),
                    waiting_to_send: b.outbuf_msg_cnt,
                    awaiting_response: b.waitresp_msg_cnt,
                })
                .collect(),
        ),
    };
    brokers.sort_by(|a, b| a.name.cmp(&b.name));
    Statistics {
        json,
        librdkafka_queued_messages: queued_messages,
        librdkafka_queued_bytes: queued_bytes,
        brokers,
        producer,
    }
}
