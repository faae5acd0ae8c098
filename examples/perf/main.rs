//! The producer perf tool: produce N records, await every delivery, report
//! throughput, delivery latency, CPU time per record and peak memory.
//!
//! ```text
//! cargo run --release --example perf                      # embedded cluster
//! cargo run --release --example perf -- --brokers 127.0.0.1:9092 --json
//! cargo run --release --example perf -- --client base-producer --rate 50000 --seconds 10
//! cargo run --release --example perf -- --help
//! ```
//!
//! Latency is measured per record from the moment it was due (when
//! `produce` is called, or with `--rate` from its slot in the fixed
//! schedule, so a stall delays every record behind it and coordinated
//! omission cannot hide it) to the moment its delivery report reached the
//! application: the wake-up of its future (stamped by the waker itself), or
//! the delivery callback for the `BaseProducer` loop. CPU time is the
//! process's user + system time (getrusage), which on the embedded cluster
//! includes the mock broker's threads, the same for every client.

mod clients;
mod probe;

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use aioproducer::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use aioproducer::rdkafka::client::DefaultClientContext;
use aioproducer::rdkafka::producer::{FutureProducer, FutureRecord};
use aioproducer::rdkafka::ClientConfig;
use aioproducer::{AioProducer, EmbeddedCluster, Record, Topic};
use bytes::Bytes;

use clients::{Job, Pacing};
use probe::{Tally, Window};

const USAGE: &str = "\
perf: produce records and await every delivery report

USAGE: perf [OPTIONS]

  --client NAME        aioproducer (default), future-producer (rust-rdkafka's
                       FutureProducer), base-producer (a rust-rdkafka
                       BaseProducer loop with a poll thread),
                       base-producer-inline (the same on one thread, poll(0)
                       after each send), or librdkafka's ceiling, no futures:
                       librdkafka-batch (rd_kafka_produce_batch, 1000 records
                       per call, each call to one partition in turn) and
                       librdkafka-batch-ua (the same, partitioner's choice)
  --messages N         records to produce (default 1000000)
  --seconds S          with --rate: produce for S seconds instead (messages = rate x S)
  --size BYTES         payload size (default 100)
  --keys N             give records keys, N distinct ones in turn (default:
                       no key); librdkafka-batch then sends each call to one
                       partition regardless of the keys (the limit)
  --partitions N       partitions of the topic (default 6)
  --topic NAME         topic (default perf-<pid>; created if missing)
  --brokers HOST:PORT  a real cluster (default: an embedded mock cluster)
  --workers N          aioproducer worker threads (default: the producer's)
  --producers N        threads calling produce (default 1; aioproducer and
                       future-producer only)
  --batch-size N       aioproducer: hold N records per worker before handing over
  --buffer-timeout-ms MS  with --batch-size: longest hold (default 100)
  --linger-ms MS       librdkafka linger.ms (default: librdkafka's, 5)
  --rate N             offered load in records/s (default: as fast as possible)
  --window N           futures in flight per producing thread (default 65536;
                       10000 for future-producer)
  -X KEY=VALUE         any librdkafka property, for every client (repeatable)
  --json               print one JSON line with the results
";

/// Which client to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ours,
    Future,
    Base,
    BaseInline,
    Batch,
    BatchUa,
}

impl Kind {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "aioproducer" => Some(Kind::Ours),
            "future-producer" => Some(Kind::Future),
            "base-producer" => Some(Kind::Base),
            "base-producer-inline" => Some(Kind::BaseInline),
            "librdkafka-batch" => Some(Kind::Batch),
            "librdkafka-batch-ua" => Some(Kind::BatchUa),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Ours => "aioproducer",
            Kind::Future => "future-producer",
            Kind::Base => "base-producer",
            Kind::BaseInline => "base-producer-inline",
            Kind::Batch => "librdkafka-batch",
            Kind::BatchUa => "librdkafka-batch-ua",
        }
    }

    /// How a `BaseProducer` client polls, for the clients built on one.
    fn polling(self) -> Option<clients::Polling> {
        match self {
            Kind::Ours | Kind::Future => None,
            Kind::BaseInline => Some(clients::Polling::Inline),
            Kind::Base | Kind::Batch | Kind::BatchUa => Some(clients::Polling::Thread),
        }
    }
}

#[derive(Debug, Clone)]
struct Options {
    client: Kind,
    messages: u64,
    seconds: Option<f64>,
    size: usize,
    keys: usize,
    partitions: i32,
    topic: Option<String>,
    brokers: Option<String>,
    workers: Option<usize>,
    producers: usize,
    batch_size: Option<usize>,
    buffer_timeout: Duration,
    linger_ms: Option<u64>,
    rate: Option<f64>,
    window: Option<usize>,
    properties: Vec<(String, String)>,
    json: bool,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        client: Kind::Ours,
        messages: 1_000_000,
        seconds: None,
        size: 100,
        keys: 0,
        partitions: 6,
        topic: None,
        brokers: None,
        workers: None,
        producers: 1,
        batch_size: None,
        buffer_timeout: Duration::from_millis(100),
        linger_ms: None,
        rate: None,
        window: None,
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
            "--client" => {
                let name = value()?;
                o.client =
                    Kind::parse(&name).ok_or(format!("unknown client {name:?}\n\n{USAGE}"))?;
            }
            "--messages" => o.messages = num(&flag, value()?)?,
            "--seconds" => o.seconds = Some(num(&flag, value()?)?),
            "--size" => o.size = num(&flag, value()?)?,
            "--keys" => o.keys = num(&flag, value()?)?,
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
            "--window" => o.window = Some(num::<usize>(&flag, value()?)?.max(1)),
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
    if let (Some(rate), Some(seconds)) = (o.rate, o.seconds) {
        o.messages = (rate * seconds) as u64;
    } else if o.seconds.is_some() {
        return Err("--seconds needs --rate".into());
    }
    if o.client.polling().is_some() {
        o.producers = 1;
    }
    Ok(o)
}

/// The process's CPU time (user + system) and peak resident set.
#[derive(Clone, Copy)]
struct Usage {
    cpu: Duration,
    peak_rss_kib: u64,
}

fn usage() -> Usage {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Usage {
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        peak_rss_kib: usage.ru_maxrss as u64,
    }
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

/// The run, in its steps: a cluster and topic, the client, the timed
/// production, the report.
fn run(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let topic = options
        .topic
        .clone()
        .unwrap_or_else(|| format!("perf-{}", std::process::id()));
    let (bootstrap, _cluster) = target(&options, &topic)?;
    let properties = client_properties(&options, &bootstrap);
    let clients = Clients::start(&options, &properties, &topic)?;
    let measured = produce(&options, &clients, &topic);
    let batches = clients.ours.as_ref().map(|p| {
        let stats = p.stats();
        let calls: u64 = stats.workers.iter().map(|w| w.batches).sum();
        let records: u64 = stats.workers.iter().map(|w| w.records).sum();
        records as f64 / calls.max(1) as f64
    });
    if let Some(producer) = &clients.ours {
        futures::executor::block_on(producer.close());
    }
    report(&options, &topic, &bootstrap, measured, batches);
    Ok(())
}

/// The cluster to produce to, with the topic made: the one `--brokers`
/// names, or an embedded one (returned, to live as long as the run).
fn target(
    options: &Options,
    topic: &str,
) -> Result<(String, Option<EmbeddedCluster>), Box<dyn std::error::Error>> {
    match &options.brokers {
        Some(brokers) => {
            create_topic(brokers, topic, options.partitions)?;
            Ok((brokers.clone(), None))
        }
        None => {
            let cluster = EmbeddedCluster::new(1)?;
            cluster.create_topic(topic, options.partitions)?;
            Ok((cluster.bootstrap_servers(), Some(cluster)))
        }
    }
}

/// The same librdkafka properties for every client.
fn client_properties(options: &Options, bootstrap: &str) -> Vec<(String, String)> {
    let mut properties = vec![
        ("bootstrap.servers".to_string(), bootstrap.to_string()),
        ("acks".to_string(), "all".to_string()),
        ("enable.idempotence".to_string(), "true".to_string()),
    ];
    if let Some(linger) = options.linger_ms {
        properties.push(("linger.ms".into(), linger.to_string()));
    }
    properties.extend(options.properties.iter().cloned());
    properties
}

/// The client under test (one of the three), connected and warmed up.
struct Clients {
    ours: Option<AioProducer>,
    future: Option<FutureProducer>,
    base: Option<clients::BaseClient>,
}

impl Clients {
    /// Makes the client `options` names. Every client sends one record
    /// through its own connections first, so none is timed while it
    /// connects, fetches metadata or gets its producer id.
    fn start(
        options: &Options,
        properties: &[(String, String)],
        topic: &str,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let mut config = ClientConfig::new();
        for (k, v) in properties {
            config.set(k, v);
        }
        let ours = match options.client {
            Kind::Ours => Some(build_ours(options, properties)?),
            _ => None,
        };
        let future: Option<FutureProducer> = match options.client {
            Kind::Future => Some(config.create()?),
            _ => None,
        };
        if let Some(producer) = &ours {
            futures::executor::block_on(
                producer.send(Record::new(Topic::new(topic)).with_payload("warm-up")),
            )?;
        }
        if let Some(producer) = &future {
            let record = FutureRecord::<(), str>::to(topic).payload("warm-up");
            futures::executor::block_on(producer.send(record, Duration::from_secs(30)))
                .map_err(|(e, _)| e)?;
        }
        let base = match options.client.polling() {
            Some(polling) => Some(clients::BaseClient::new(
                &config,
                topic,
                options.messages,
                polling,
            )?),
            None => None,
        };
        Ok(Self { ours, future, base })
    }
}

/// What the timed part measured.
struct Measured {
    tallies: Vec<Tally>,
    elapsed: Duration,
    before: Usage,
    after: Usage,
}

/// The timed part: `options.producers` threads each make their window,
/// then all start together (the clock and the CPU count start once every
/// window is made) and produce their share.
fn produce(options: &Options, clients: &Clients, topic: &str) -> Measured {
    // One shared buffer, never freed: cloning it into a record costs nothing.
    let payload = Bytes::from_static(Box::leak(vec![b'x'; options.size].into_boxed_slice()));
    // Keys made once, never freed: cloning one into a record costs nothing.
    let keys: Vec<Bytes> = (0..options.keys)
        .map(|k| {
            Bytes::from_static(Box::leak(
                format!("key-{k}").into_bytes().into_boxed_slice(),
            ))
        })
        .collect();
    let keys = &keys[..];
    let progress = AtomicU64::new(0);
    let show_progress =
        !options.json && std::io::stderr().is_terminal() && options.messages >= 200_000;
    let window = options.window.unwrap_or(match options.client {
        Kind::Future => 10_000,
        _ => 65_536,
    });
    let per_thread = options.messages / options.producers as u64;
    let (ready, go) = (
        Barrier::new(options.producers + 1),
        Barrier::new(options.producers + 1),
    );
    let started: OnceLock<(Instant, Usage)> = OnceLock::new();
    let tallies: Vec<Tally> = thread::scope(|s| {
        let handles: Vec<_> = (0..options.producers)
            .map(|k| {
                let count = if k == 0 {
                    options.messages - per_thread * (options.producers as u64 - 1)
                } else {
                    per_thread
                };
                let (ours, future, base) = (&clients.ours, &clients.future, &clients.base);
                let (ready, go, started, payload, progress) =
                    (&ready, &go, &started, &payload, &progress);
                thread::Builder::new()
                    .name(format!("perf-producer-{k}"))
                    .spawn_scoped(s, move || {
                        let mut ours_window = ours.as_ref().map(|_| Window::new(window));
                        let mut future_window = future.as_ref().map(|_| Window::new(window));
                        ready.wait();
                        go.wait();
                        let job = Job {
                            topic,
                            payload: payload.clone(),
                            keys,
                            count,
                            pacing: Pacing {
                                start: started.get().expect("set before the start").0,
                                interval: options.rate.map(|r| 1e9 * options.producers as f64 / r),
                            },
                            progress,
                        };
                        if let (Some(producer), Some(w)) = (ours, ours_window.as_mut()) {
                            clients::run_ours(producer, &job, w)
                        } else if let (Some(producer), Some(w)) = (future, future_window.as_mut()) {
                            clients::run_future(producer, &job, w)
                        } else {
                            let base = base.as_ref().expect("one client");
                            match options.client {
                                Kind::Batch => {
                                    clients::run_batch(base, &job, Some(options.partitions))
                                }
                                Kind::BatchUa => clients::run_batch(base, &job, None),
                                _ => clients::run_base(base, &job),
                            }
                        }
                    })
                    .expect("spawn a producer thread")
            })
            .collect();
        ready.wait();
        let _ = started.set((Instant::now(), usage()));
        go.wait();
        if show_progress {
            show_progress_until_done(&handles, &progress, options.messages, started.get());
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("producer thread"))
            .collect()
    });
    let (start, before) = *started.get().expect("set before the run");
    Measured {
        tallies,
        elapsed: start.elapsed(),
        before,
        after: usage(),
    }
}

/// A progress bar on stderr until every producing thread is done.
fn show_progress_until_done<T>(
    handles: &[thread::ScopedJoinHandle<'_, T>],
    progress: &AtomicU64,
    messages: u64,
    started: Option<&(Instant, Usage)>,
) {
    let start = started.expect("just set").0;
    while !handles.iter().all(|h| h.is_finished()) {
        let done = progress.load(Ordering::Relaxed).min(messages);
        let pct = done * 100 / messages;
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

/// Prints what was measured: one JSON line (`--json`, for
/// `scripts/compare`) or a few lines for a person.
fn report(
    options: &Options,
    topic: &str,
    bootstrap: &str,
    measured: Measured,
    batches: Option<f64>,
) {
    let Measured {
        tallies,
        elapsed,
        before,
        after,
    } = measured;
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
    let cpu_us_per_record = (after.cpu - before.cpu).as_secs_f64() * 1e6 / options.messages as f64;
    let us = |ns: u64| ns as f64 / 1e3;
    let (p50, p99, p999, max) = (
        us(percentile(&latencies, 50.0)),
        us(percentile(&latencies, 99.0)),
        us(percentile(&latencies, 99.9)),
        us(latencies.last().copied().unwrap_or(0)),
    );
    let client = options.client.name();
    if options.json {
        println!(
            "{{\"client\":\"{client}\",\"messages\":{},\"size\":{},\"partitions\":{},\
             \"rate\":{},\"seconds\":{secs:.3},\"records_per_sec\":{records_per_sec:.0},\
             \"mb_per_sec\":{mb_per_sec:.2},\"cpu_us_per_record\":{cpu_us_per_record:.3},\
             \"peak_rss_mib\":{:.1},\"p50_us\":{p50:.0},\"p99_us\":{p99:.0},\
             \"p999_us\":{p999:.0},\"max_us\":{max:.0},\"delivered\":{delivered},\
             \"failed\":{failed},\"timed\":{},\"mean_batch\":{}}}",
            options.messages,
            options.size,
            options.partitions,
            options.rate.map_or("null".into(), |r| format!("{r:.0}")),
            after.peak_rss_kib as f64 / 1024.0,
            latencies.len(),
            batches.map_or("null".into(), |b| format!("{b:.1}")),
        );
    } else {
        println!(
            "{client}: {} records x {} B to {} partitions of {topic:?} at {bootstrap} in {secs:.2} s",
            options.messages, options.size, options.partitions
        );
        println!("throughput: {records_per_sec:.0} records/s, {mb_per_sec:.2} MB/s");
        println!(
            "delivery latency (us, {} records timed): p50 {p50:.0}, p99 {p99:.0}, p99.9 {p999:.0}, \
             max {max:.0}",
            latencies.len()
        );
        println!(
            "cpu {cpu_us_per_record:.3} us/record; peak RSS {:.1} MiB",
            after.peak_rss_kib as f64 / 1024.0
        );
        println!("delivered {delivered}, failed {failed}");
        if let Some(b) = batches {
            println!("mean hand-over batch {b:.1} records");
        }
        if let Some(e) = first_error {
            println!("first failure: {e}");
        }
    }
}

fn build_ours(
    options: &Options,
    properties: &[(String, String)],
) -> Result<AioProducer, aioproducer::Error> {
    let mut builder = AioProducer::builder();
    for (k, v) in properties {
        builder = builder.set(k, v);
    }
    if let Some(workers) = options.workers {
        builder = builder.workers(workers);
    }
    if let Some(size) = options.batch_size {
        builder = builder
            .batch_size(size)
            .buffer_timeout(options.buffer_timeout);
    }
    builder.build()
}

/// Creates the topic on a real cluster (an existing one is fine), with the
/// cluster's default replication factor (`-1`: one replica on a single
/// broker, three on `scripts/kafka cluster start 3`).
fn create_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
) -> Result<(), Box<dyn std::error::Error>> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
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
