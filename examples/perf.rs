//! The producer perf tool: produce N records, await every delivery, report
//! throughput and delivery latency.
//!
//! ```text
//! cargo run --release --example perf                      # embedded cluster
//! cargo run --release --example perf -- --brokers 127.0.0.1:9092 --json
//! cargo run --release --example perf -- --help
//! ```
//!
//! Latency is measured per record from the moment `produce` is called (or,
//! with `--rate`, from the moment the record was *due*, so a stall delays
//! every record behind it, as the user would see: no coordinated omission)
//! to the moment its future is woken by the delivery report. Each in-flight
//! future is polled once with a waker that stamps the time of its wake-up,
//! so the measurement does not depend on when this tool gets round to
//! reaping the future.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use aioproducer::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use aioproducer::rdkafka::client::DefaultClientContext;
use aioproducer::rdkafka::ClientConfig;
use aioproducer::{AioProducer, DeliveryFuture, EmbeddedCluster, Record, Topic};
use bytes::Bytes;

const USAGE: &str = "\
perf: produce records through aioproducer and await every delivery report

USAGE: perf [OPTIONS]

  --messages N         records to produce (default 1000000)
  --size BYTES         payload size (default 100)
  --partitions N       partitions of the topic (default 6)
  --topic NAME         topic (default perf-<pid>)
  --brokers HOST:PORT  a real cluster (default: an embedded mock cluster)
  --workers N          producer worker threads (default: the producer's)
  --producers N        threads calling produce (default 1)
  --batch-size N       hold N records per worker before handing over
  --buffer-timeout-ms MS  with --batch-size: longest hold (default 100)
  --linger-ms MS       librdkafka linger.ms (default: librdkafka's, 5)
  --rate N             offered load in records/s over all producers (default: as fast as possible)
  --window N           futures in flight per producer thread (default 65536)
  -X KEY=VALUE         any librdkafka property (repeatable)
  --json               print one JSON line with the results
";

#[derive(Debug, Clone)]
struct Options {
    messages: u64,
    size: usize,
    partitions: i32,
    topic: Option<String>,
    brokers: Option<String>,
    workers: Option<usize>,
    producers: usize,
    batch_size: Option<usize>,
    buffer_timeout: Duration,
    linger_ms: Option<u64>,
    rate: Option<f64>,
    window: usize,
    properties: Vec<(String, String)>,
    json: bool,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        messages: 1_000_000,
        size: 100,
        partitions: 6,
        topic: None,
        brokers: None,
        workers: None,
        producers: 1,
        batch_size: None,
        buffer_timeout: Duration::from_millis(100),
        linger_ms: None,
        rate: None,
        window: 65536,
        properties: Vec::new(),
        json: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{flag}: not a number: {v:?}"))
        }
        match flag.as_str() {
            "--messages" => o.messages = num(&flag, value()?)?,
            "--size" => o.size = num(&flag, value()?)?,
            "--partitions" => o.partitions = num(&flag, value()?)?,
            "--topic" => o.topic = Some(value()?),
            "--brokers" => o.brokers = Some(value()?),
            "--workers" => o.workers = Some(num(&flag, value()?)?),
            "--producers" => o.producers = num::<usize>(&flag, value()?)?.max(1),
            "--batch-size" => o.batch_size = Some(num(&flag, value()?)?),
            "--buffer-timeout-ms" => {
                o.buffer_timeout = Duration::from_millis(num(&flag, value()?)?)
            }
            "--linger-ms" => o.linger_ms = Some(num(&flag, value()?)?),
            "--rate" => o.rate = Some(num(&flag, value()?)?),
            "--window" => o.window = num::<usize>(&flag, value()?)?.max(1),
            "-X" => {
                let kv = value()?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or(format!("-X {kv}: expected KEY=VALUE"))?;
                o.properties.push((k.into(), v.into()));
            }
            "--json" => o.json = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other:?}\n\n{USAGE}")),
        }
    }
    Ok(o)
}

/// A waker that stamps the time of its first wake-up.
struct Probe {
    start: Instant,
    woke_at: AtomicU64,
    owner: Thread,
}

impl Probe {
    const NOT_WOKEN: u64 = u64::MAX;

    fn reset(&self) {
        self.woke_at.store(Self::NOT_WOKEN, Ordering::Relaxed);
    }

    fn woke_at(&self) -> Option<u64> {
        Some(self.woke_at.load(Ordering::Acquire)).filter(|&t| t != Self::NOT_WOKEN)
    }
}

impl Wake for Probe {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let now = self.start.elapsed().as_nanos() as u64;
        let _ = self.woke_at.compare_exchange(
            Self::NOT_WOKEN,
            now,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        self.owner.unpark();
    }
}

/// One in-flight record: its future, the time it was due, and its probe.
struct InFlight {
    future: DeliveryFuture,
    due: u64,
}

#[derive(Default)]
struct Tally {
    latencies: Vec<u64>,
    failed: u64,
    first_error: Option<String>,
}

/// Waits for one future and records its latency.
fn reap(entry: InFlight, probe: &Arc<Probe>, waker: &Waker, start: Instant, tally: &mut Tally) {
    let InFlight { mut future, due } = entry;
    let mut cx = Context::from_waker(waker);
    let result = loop {
        match Pin::new(&mut future).poll(&mut cx) {
            Poll::Ready(result) => break result,
            Poll::Pending => {
                if probe.woke_at().is_none() {
                    thread::park();
                }
            }
        }
    };
    let done = probe
        .woke_at()
        .unwrap_or_else(|| start.elapsed().as_nanos() as u64);
    tally.latencies.push(done.saturating_sub(due));
    if let Err(e) = result {
        tally.failed += 1;
        tally.first_error.get_or_insert_with(|| e.to_string());
    }
}

/// One producing thread: `count` records, `window` futures in flight.
fn produce_loop(
    producer: &AioProducer,
    topic: &Topic,
    payload: &Bytes,
    count: u64,
    options: &Options,
    start: Instant,
    progress: &AtomicU64,
) -> Tally {
    let me = thread::current();
    let probes: Vec<Arc<Probe>> = (0..options.window)
        .map(|_| {
            Arc::new(Probe {
                start,
                woke_at: AtomicU64::new(Probe::NOT_WOKEN),
                owner: me.clone(),
            })
        })
        .collect();
    let wakers: Vec<Waker> = probes.iter().map(|p| Waker::from(Arc::clone(p))).collect();
    let mut window: Vec<Option<InFlight>> = (0..options.window).map(|_| None).collect();
    let mut tally = Tally {
        latencies: Vec::with_capacity(count as usize),
        ..Tally::default()
    };
    let interval = options.rate.map(|r| 1e9 * options.producers as f64 / r);
    for i in 0..count {
        let pos = (i % options.window as u64) as usize;
        if let Some(entry) = window[pos].take() {
            reap(entry, &probes[pos], &wakers[pos], start, &mut tally);
        }
        let due = match interval {
            Some(ns) => {
                let due = (i as f64 * ns) as u64;
                while (start.elapsed().as_nanos() as u64) < due {
                    std::hint::spin_loop();
                }
                due
            }
            None => start.elapsed().as_nanos() as u64,
        };
        let record = Record::new(topic).with_payload(payload.clone());
        let mut future = match futures::executor::block_on(producer.produce(record)) {
            Ok(f) => f,
            Err(e) => {
                tally.failed += 1;
                tally.first_error.get_or_insert_with(|| e.to_string());
                continue;
            }
        };
        probes[pos].reset();
        // Register the probe now, so the wake-up is stamped when it happens.
        let mut cx = Context::from_waker(&wakers[pos]);
        if let Poll::Ready(result) = Pin::new(&mut future).poll(&mut cx) {
            tally
                .latencies
                .push((start.elapsed().as_nanos() as u64).saturating_sub(due));
            if let Err(e) = result {
                tally.failed += 1;
                tally.first_error.get_or_insert_with(|| e.to_string());
            }
            continue;
        }
        window[pos] = Some(InFlight { future, due });
        if i % 4096 == 0 {
            progress.fetch_add(4096, Ordering::Relaxed);
        }
    }
    for (pos, slot) in window.iter_mut().enumerate() {
        if let Some(entry) = slot.take() {
            reap(entry, &probes[pos], &wakers[pos], start, &mut tally);
        }
    }
    tally
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn main() {
    let options = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(options) {
        eprintln!("perf: {e}");
        std::process::exit(1);
    }
}

fn run(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let topic_name = options
        .topic
        .clone()
        .unwrap_or_else(|| format!("perf-{}", std::process::id()));
    let _cluster;
    let bootstrap = match &options.brokers {
        Some(brokers) => {
            create_topic(brokers, &topic_name, options.partitions)?;
            brokers.clone()
        }
        None => {
            let cluster = EmbeddedCluster::new(1)?;
            cluster.create_topic(&topic_name, options.partitions)?;
            let servers = cluster.bootstrap_servers();
            _cluster = cluster;
            servers
        }
    };

    let mut builder = AioProducer::builder()
        .bootstrap_servers(bootstrap.clone())
        .set("acks", "all");
    if let Some(workers) = options.workers {
        builder = builder.workers(workers);
    }
    if let Some(size) = options.batch_size {
        builder = builder
            .batch_size(size)
            .buffer_timeout(options.buffer_timeout);
    }
    if let Some(linger) = options.linger_ms {
        builder = builder.set("linger.ms", linger.to_string());
    }
    for (k, v) in &options.properties {
        builder = builder.set(k, v);
    }
    let producer = builder.build()?;

    // Warm-up: connect and learn the topic's metadata before timing.
    futures::executor::block_on(
        producer.send(Record::new(Topic::new(&topic_name)).with_payload("warm-up")),
    )?;

    let topic = Topic::new(&topic_name);
    let payload = Bytes::from_static(Box::leak(vec![b'x'; options.size].into_boxed_slice()));
    let progress = AtomicU64::new(0);
    let show_progress =
        !options.json && std::io::stderr().is_terminal() && options.messages >= 200_000;
    let start = Instant::now();
    let per_thread = options.messages / options.producers as u64;
    let tallies: Vec<Tally> = thread::scope(|s| {
        let handles: Vec<_> = (0..options.producers)
            .map(|k| {
                let count = if k == 0 {
                    options.messages - per_thread * (options.producers as u64 - 1)
                } else {
                    per_thread
                };
                let (producer, topic, payload, options, progress) =
                    (&producer, &topic, &payload, &options, &progress);
                thread::Builder::new()
                    .name(format!("perf-producer-{k}"))
                    .spawn_scoped(s, move || {
                        produce_loop(producer, topic, payload, count, options, start, progress)
                    })
                    .expect("spawn a producer thread")
            })
            .collect();
        if show_progress {
            while !handles.iter().all(|h| h.is_finished()) {
                let done = progress.load(Ordering::Relaxed).min(options.messages);
                let pct = done * 100 / options.messages;
                let rate = done as f64 / start.elapsed().as_secs_f64();
                eprint!(
                    "\r[{:<50}] {pct:3}% {:.2} M rec/s",
                    "#".repeat(pct as usize / 2),
                    rate / 1e6
                );
                let _ = std::io::stderr().flush();
                thread::sleep(Duration::from_millis(250));
            }
            eprintln!();
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("producer thread"))
            .collect()
    });
    let elapsed = start.elapsed();
    let stats = producer.stats();
    futures::executor::block_on(producer.close());

    let mut latencies: Vec<u64> = Vec::with_capacity(options.messages as usize);
    let mut failed = 0;
    let mut first_error = None;
    for t in tallies {
        latencies.extend(t.latencies);
        failed += t.failed;
        first_error = first_error.or(t.first_error);
    }
    latencies.sort_unstable();
    let delivered = options.messages - failed;
    let secs = elapsed.as_secs_f64();
    let records_per_sec = options.messages as f64 / secs;
    let mb_per_sec = records_per_sec * options.size as f64 / 1e6;
    let us = |ns: u64| ns as f64 / 1e3;
    let (p50, p99, p999, max) = (
        us(percentile(&latencies, 50.0)),
        us(percentile(&latencies, 99.0)),
        us(percentile(&latencies, 99.9)),
        us(latencies.last().copied().unwrap_or(0)),
    );
    let batches: u64 = stats.workers.iter().map(|w| w.batches).sum();
    let handed: u64 = stats.workers.iter().map(|w| w.records).sum();
    let mean_batch = if batches == 0 {
        0.0
    } else {
        handed as f64 / batches as f64
    };
    if options.json {
        println!(
            "{{\"client\":\"aioproducer\",\"messages\":{},\"size\":{},\"partitions\":{},\"seconds\":{secs:.3},\
             \"records_per_sec\":{records_per_sec:.0},\"mb_per_sec\":{mb_per_sec:.2},\"p50_us\":{p50:.0},\
             \"p99_us\":{p99:.0},\"p999_us\":{p999:.0},\"max_us\":{max:.0},\"delivered\":{delivered},\
             \"failed\":{failed},\"mean_batch\":{mean_batch:.1},\"pool_created\":{}}}",
            options.messages, options.size, options.partitions, stats.pool.created
        );
    } else {
        println!(
            "{} records x {} B to {} partitions of {topic_name:?} at {bootstrap} in {secs:.2} s",
            options.messages, options.size, options.partitions
        );
        println!("throughput: {records_per_sec:.0} records/s, {mb_per_sec:.2} MB/s");
        println!(
            "delivery latency (us): p50 {p50:.0}, p99 {p99:.0}, p99.9 {p999:.0}, max {max:.0}"
        );
        println!(
            "delivered {delivered}, failed {failed}; mean hand-over batch {mean_batch:.1}; pool slots created {}",
            stats.pool.created
        );
        if let Some(e) = first_error {
            println!("first failure: {e}");
        }
    }
    Ok(())
}

/// Creates the topic on a real cluster (an existing one is fine).
fn create_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
) -> Result<(), Box<dyn std::error::Error>> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = futures::executor::block_on(admin.create_topics([&new], &AdminOptions::new()))?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, aioproducer::rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(format!("creating topic {name}: {code}").into()),
        }
    }
    Ok(())
}
