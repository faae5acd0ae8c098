#!/usr/bin/env python3
"""Runs every producer against one broker, back to back, and writes the
benchmark page (docs/benchmarks.md), its chart (docs/benchmarks.png) and the
raw results (docs/benchmarks.json).

Started by scripts/compare/run, which sets up the broker, the perf tool and
the Python venv. Every client gets the same settings (acks=all, linger.ms=5,
enable.idempotence=true, 100 B payloads, a fresh 6-partition topic per run);
each measurement is repeated --rounds times with the clients interleaved, so
a noisy neighbour hurts them all alike, and the page shows the median.
"""
import argparse
import collections
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

SIZE = 100
PARTITIONS = 6
SETTINGS = {"acks": "all", "linger.ms": "5", "enable.idempotence": "true"}
# The settings as `-X key=value` flags (the perf tool and the Python peer).
SETTINGS_FLAGS = [flag for key, value in SETTINGS.items() for flag in ("-X", f"{key}={value}")]
LATENCY_RATE = 50_000
# The keyed scenario: records get one of this many keys in turn (the Rust
# clients only: the Java and Python tools have no such option).
KEYS = 1000
LATENCY_SECONDS = 10
METRICS = ["records_per_sec", "mb_per_sec", "cpu_us_per_record", "peak_rss_mib",
           "p50_us", "p99_us", "p999_us", "max_us"]


@dataclass
class Client:
    name: str
    label: str
    kind: str  # "perf", "python" or "java"
    args: list = field(default_factory=list)
    embedded: bool = False  # also runs on the embedded mock cluster
    throughput_messages: int = 1_000_000
    # In latency runs too (the ceiling's batches of 1000 are sent when their
    # first record is due: its latencies would measure the batching).
    latency: bool = True


CLIENTS = [
    Client("aioproducer", "aioproducer (ours)", "perf", ["--client", "aioproducer"], True),
    Client("base-producer-inline", "rust-rdkafka BaseProducer loop, one thread, poll(0) inline", "perf",
           ["--client", "base-producer-inline"], True),
    Client("base-producer", "rust-rdkafka BaseProducer loop, poll thread", "perf", ["--client", "base-producer"], True),
    Client("future-producer", "rust-rdkafka FutureProducer", "perf", ["--client", "future-producer"], True),
    Client("java-producer", "Java KafkaProducer (ProducerPerformance)", "java"),
    Client("python-aioproducer", "Python AIOProducer (defaults)", "python",
           throughput_messages=200_000),
    Client("python-aioproducer-batch10000", "Python AIOProducer (batch_size=10000)", "python",
           ["--batch-size", "10000"], throughput_messages=200_000),
    Client("librdkafka-batch", "the limit: librdkafka produce_batch, 1000 per call, explicit partitions, no futures",
           "perf", ["--client", "librdkafka-batch"], True, latency=False),
    Client("librdkafka-batch-ua", "librdkafka produce_batch, 1000 per call, partitioner, no futures",
           "perf", ["--client", "librdkafka-batch-ua"], True, latency=False),
]

# The strongest honest loop, and the ceiling, that the targets are measured against.
LOOP = "base-producer-inline"
CEILING = "librdkafka-batch"
# The clients of the three-node cluster run (replication factor 3): ours,
# the strongest loop, FutureProducer and Java.
CLUSTER_CLIENTS = ["aioproducer", LOOP, "future-producer", "java-producer"]


def log(message):
    print(f"compare: {message}", file=sys.stderr, flush=True)


class Runner:
    def __init__(self, args):
        self.args = args
        self.kafka = os.path.join(args.root, "scripts", "kafka")
        self.brokers = {
            "broker": subprocess.check_output([self.kafka, "bootstrap"], text=True).strip(),
            "cluster": subprocess.check_output([self.kafka, "cluster", "bootstrap"], text=True).strip(),
        }
        self.where = "broker"
        self.topics = 0
        self.java_startup_cpu = None

    @property
    def bootstrap(self):
        """The brokers of the current measurement (the embedded cluster's
        runs have none: the perf tool makes its own)."""
        return self.brokers["cluster" if self.where == "cluster" else "broker"]

    def topic(self, prefix, create):
        self.topics += 1
        name = f"compare-{prefix}-{os.getpid()}-{self.topics}"
        if create:
            # With the cluster's default replication factor: 1 on the
            # broker, 3 on the cluster.
            verb = ["cluster", "topic"] if self.where == "cluster" else ["topic"]
            subprocess.run([self.kafka, *verb, name, str(PARTITIONS)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return name

    def run(self, client, scenario, where):
        """One measurement: returns the client's JSON result."""
        self.where = where
        embedded = where == "embedded"
        messages = client.throughput_messages
        rate = None
        if scenario == "latency":
            rate = LATENCY_RATE
            messages = LATENCY_RATE * LATENCY_SECONDS
        if self.args.quick:
            messages = min(messages, LATENCY_RATE if scenario == "latency" else 100_000)
        if client.kind == "perf":
            keys = KEYS if scenario == "keyed" else None
            return self.run_perf(client, messages, rate, embedded, keys)
        if client.kind == "python":
            return self.run_python(client, messages, rate)
        return self.run_java(messages, rate)

    def run_perf(self, client, messages, rate, embedded, keys=None):
        cmd = [self.args.perf, *client.args, "--json", "--size", str(SIZE),
               "--partitions", str(PARTITIONS), "--messages", str(messages)]
        if keys:
            cmd += ["--keys", str(keys)]
        if not embedded:
            # The perf tool creates its topic itself, with the same
            # partitions and replication as `scripts/kafka topic`.
            cmd += ["--brokers", self.bootstrap, "--topic", self.topic(client.name, False)]
        if rate:
            cmd += ["--rate", str(rate)]
        return json_line(cmd + SETTINGS_FLAGS)

    def run_python(self, client, messages, rate):
        cmd = [self.args.python, os.path.join(self.args.root, "scripts", "compare", "aio_perf.py"),
               *client.args, "--brokers", self.bootstrap, "--topic", self.topic(client.name, True),
               "--messages", str(messages), "--size", str(SIZE), "--partitions", str(PARTITIONS)]
        if rate:
            cmd += ["--rate", str(rate)]
        return json_line(cmd + SETTINGS_FLAGS)

    def java(self, topic, messages, rate, warmup):
        """Runs ProducerPerformance under /usr/bin/time: (its output, CPU s, peak RSS KiB)."""
        with tempfile.NamedTemporaryFile("r") as usage:
            cmd = ["/usr/bin/time", "-f", "%U %S %M", "-o", usage.name,
                   self.kafka, "java", "org.apache.kafka.tools.ProducerPerformance",
                   "--topic", topic, "--num-records", str(messages), "--record-size", str(SIZE),
                   "--throughput", str(rate or -1), "--warmup-records", str(warmup),
                   "--command-property", f"bootstrap.servers={self.bootstrap}",
                   *[f"{k}={v}" for k, v in SETTINGS.items()]]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            user, system, rss = usage.read().split()
        return out, float(user) + float(system), int(rss)

    def run_java(self, messages, rate):
        if self.java_startup_cpu is None:
            # The JVM's start-up and shutdown, measured once with a single
            # record, is not charged to the records.
            _, self.java_startup_cpu, _ = self.java(self.topic("java-startup", True), 1, None, 0)
        warmup = messages // 10
        out, cpu, rss = self.java(self.topic("java-producer", True), messages, rate, warmup)
        # The steady-state line (after the tool's own warm-up): the peer's
        # best honest number.
        line = next(l for l in out.splitlines() if "steady state records sent" in l)
        number = r"([0-9.]+)"
        sent, per_sec = re.search(rf"{number} steady state records sent, {number} records/sec", line).groups()
        p = dict((q, float(v) * 1000) for v, q in re.findall(rf"{number} ms (50th|99th|99\.9th)", line))
        max_ms = float(re.search(rf"{number} ms max latency", line).group(1))
        return {
            "client": "java-producer", "messages": messages, "size": SIZE, "partitions": PARTITIONS,
            "rate": rate, "records_per_sec": round(float(per_sec)),
            "mb_per_sec": round(float(per_sec) * SIZE / 1e6, 2),
            "cpu_us_per_record": round(max(cpu - self.java_startup_cpu, 0) * 1e6 / messages, 3),
            "peak_rss_mib": round(rss / 1024, 1),
            "p50_us": p["50th"], "p99_us": p["99th"], "p999_us": p["99.9th"], "max_us": max_ms * 1000,
            "delivered": int(sent) + warmup, "failed": 0,
        }


def json_line(cmd):
    """Runs a client and parses the JSON line it ends with."""
    stdout = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(stdout.strip().splitlines()[-1])


def measure(args):
    runner = Runner(args)
    # A cold broker (JIT, page cache, log segments) would slow whichever
    # client runs first: warm it (and the cluster) with the Java tool, untimed.
    log("warming the broker up (not measured)")
    runner.java(runner.topic("warm-up", True), 100_000 if args.quick else 2_000_000, None, 0)
    plan = [("broker", "throughput"), ("broker", "latency"), ("broker", "keyed"),
            ("embedded", "throughput"), ("embedded", "latency"), ("embedded", "keyed"),
            ("cluster", "throughput")]
    if args.only:
        plan = [p for p in plan if "/".join(p) in args.only.split(",")]
    results = {f"{where}/{scenario}": {} for where, scenario in plan}
    if any(where == "cluster" for where, _ in plan):
        log("warming the cluster up (not measured)")
        runner.where = "cluster"
        runner.java(runner.topic("warm-up", True), 100_000 if args.quick else 1_000_000, None, 0)
    for round_ in range(args.rounds):
        for where, scenario in plan:
            clients = [c for c in CLIENTS if (where != "embedded" or c.embedded)
                       and (where != "cluster" or c.name in CLUSTER_CLIENTS)
                       and (scenario != "latency" or c.latency)
                       and (scenario != "keyed" or c.kind == "perf")]
            # Rotate the order every round so no client always runs first.
            shift = round_ % len(clients)
            for client in clients[shift:] + clients[:shift]:
                log(f"round {round_ + 1}/{args.rounds}: {where} {scenario} {client.name}")
                started = time.monotonic()
                result = runner.run(client, scenario, where)
                if result["failed"]:
                    raise SystemExit(f"compare: {client.name} failed {result['failed']} records")
                result["wall_seconds"] = round(time.monotonic() - started, 1)
                results[f"{where}/{scenario}"].setdefault(client.name, []).append(result)
    return results


def median(runs, metric):
    values = [r[metric] for r in runs or [] if r.get(metric) is not None]
    return statistics.median(values) if values else None


def versions(args):
    def out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"
    lock = open(os.path.join(args.root, "Cargo.lock")).read()

    def crate(name):
        m = re.search(rf'name = "{name}"\nversion = "([^"]+)"', lock)
        return m.group(1) if m else "unknown"
    pom = open(os.path.join(args.root, "scripts", "kafka-deps", "pom.xml")).read()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    mem = next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{cpu}, {os.cpu_count()} CPUs, {int(mem) // 1024 // 1024} GiB, {platform.system()} {platform.release()}",
        "commit": out(["git", "-C", args.root, "rev-parse", "--short", "HEAD"]),
        "rustc": out(["rustc", "--version"]),
        "rdkafka": crate("rdkafka"), "rdkafka-sys": crate("rdkafka-sys"),
        "kafka": re.search(r"<kafka.version>(.*)</kafka.version>", pom).group(1),
        # `java -version` writes to standard error.
        "java": subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0],
        "python": out([args.python, "-c", "import sys, confluent_kafka as c; "
                       "print(f'Python {sys.version.split()[0]}, confluent-kafka {c.__version__}, librdkafka {c.libversion()[0]}')"]),
    }


def fmt(value, metric):
    if value is None:
        return "–"
    if metric.endswith("_us"):
        return f"{value / 1000:.1f}" if value >= 10_000 else f"{value / 1000:.2f}"
    if metric == "records_per_sec":
        return f"{value:,.0f}"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def table(section, columns):
    if not section:
        return "(not measured in this run)"
    ours = section.get("aioproducer")
    head = "| client | " + " | ".join(title for _, title in columns) + " |"
    rows = [head, "|" + "---|" * (len(columns) + 1)]
    for client in CLIENTS:
        runs = section.get(client.name)
        if not runs:
            continue
        cells = []
        for metric, _ in columns:
            if metric == "vs ours":
                theirs, base = median(runs, "records_per_sec"), median(ours, "records_per_sec")
                cells.append(f"{theirs / base:.2f}×")
            elif metric == "p99 vs ours":
                cells.append(f"{(median(runs, 'p99_us') - median(ours, 'p99_us')) / 1000:+.2f} ms")
            else:
                value = median(runs, metric)
                spread = ""
                if metric == "records_per_sec" and len(runs) > 1:
                    lo, hi = min(r[metric] for r in runs), max(r[metric] for r in runs)
                    spread = f" ({lo / 1000:,.0f}k–{hi / 1000:,.0f}k)"
                cells.append(fmt(value, metric) + spread)
        name = f"**{client.label}**" if client.name == "aioproducer" else client.label
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


THROUGHPUT_COLUMNS = [("records_per_sec", "records/s (range)"), ("vs ours", "÷ ours"),
                      ("mb_per_sec", "MB/s"), ("cpu_us_per_record", "CPU µs/record"),
                      ("peak_rss_mib", "peak RSS MiB"), ("p50_us", "p50 ms"), ("p99_us", "p99 ms"),
                      ("p999_us", "p99.9 ms")]
LATENCY_COLUMNS = [("p50_us", "p50 ms"), ("p99_us", "p99 ms"), ("p999_us", "p99.9 ms"),
                   ("max_us", "max ms"), ("p99 vs ours", "p99 − ours"), ("peak_rss_mib", "peak RSS MiB")]


def chart(results, out_dir):
    """A two-panel PNG: throughput and p99 latency at the fixed rate, real broker."""
    data = os.path.join(out_dir, "benchmarks.dat")
    with open(data, "w") as f:
        for client in CLIENTS:
            t = results["broker/throughput"].get(client.name)
            lat = results["broker/latency"].get(client.name)
            if t and lat:
                label = client.label.replace(" (ProducerPerformance)", "").replace("rust-rdkafka ", "")
                f.write(f'"{label}" {median(t, "records_per_sec") / 1000:.1f} {median(lat, "p99_us") / 1000:.2f}\n')
    png = os.path.join(out_dir, "benchmarks.png")
    script = f"""
set terminal pngcairo size 1200,560 font ",10" noenhanced
set output "{png}"
set multiplot layout 1,2 title "Real broker (Kafka KRaft, one node), 100 B records, acks=all, linger.ms=5, idempotent: medians"
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.7
set xtics rotate by -30 left
set grid ytics
unset key
set title "Throughput, every delivery awaited (thousand records/s, higher is better)"
plot "{data}" using 2:xtic(1) linecolor rgb "#3465a4", "" using 0:2:(sprintf("%.0f", $2)) with labels offset 0,0.7
set title "p99 delivery latency at {LATENCY_RATE // 1000}k records/s (ms, lower is better)"
set logscale y
plot "{data}" using 3:xtic(1) linecolor rgb "#cc0000", "" using 0:3:(sprintf("%.1f", $3)) with labels offset 0,0.7
unset multiplot
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    os.remove(data)


def page(results, info, args):
    # A run of some sections only (--only) leaves the others empty.
    results = collections.defaultdict(dict, results)
    def ratio(section, a, b, metric="records_per_sec"):
        x, y = results[section].get(a), results[section].get(b)
        return median(x, metric) / median(y, metric) if x and y else float("nan")
    def p_minus_loop(where, metric):
        ours = median(results[f"{where}/latency"].get("aioproducer"), metric)
        loop = median(results[f"{where}/latency"].get(LOOP), metric)
        return "–" if ours is None or loop is None else f"{(ours - loop) / 1000:+.2f} ms"
    targets = [
        ("throughput ≥ 1.3× the single-thread BaseProducer loop (embedded)", "1.3×",
         f"{ratio('embedded/throughput', 'aioproducer', LOOP):.2f}×"),
        ("throughput ≥ 1.3× the single-thread BaseProducer loop (real broker)", "1.3×",
         f"{ratio('broker/throughput', 'aioproducer', LOOP):.2f}×"),
        ("throughput against the limit, librdkafka's produce_batch (embedded)", "–",
         f"{ratio('embedded/throughput', 'aioproducer', CEILING):.2f}×"),
        ("throughput against the limit, librdkafka's produce_batch (real broker)", "–",
         f"{ratio('broker/throughput', 'aioproducer', CEILING):.2f}×"),
        ("throughput ≥ 3× FutureProducer (embedded)", "3×",
         f"{ratio('embedded/throughput', 'aioproducer', 'future-producer'):.2f}×"),
        ("throughput ≥ 3× FutureProducer (real broker)", "3×",
         f"{ratio('broker/throughput', 'aioproducer', 'future-producer'):.2f}×"),
        ("throughput ≥ 35× Python AIOProducer, defaults (real broker)", "35×",
         f"{ratio('broker/throughput', 'aioproducer', 'python-aioproducer'):.1f}×"),
        ("throughput ≥ 1.0× the Java producer (real broker)", "1.0×",
         f"{ratio('broker/throughput', 'aioproducer', 'java-producer'):.2f}×"),
        ("CPU per record ≤ 0.9× the single-thread BaseProducer loop (embedded)", "0.9×",
         f"{ratio('embedded/throughput', 'aioproducer', LOOP, 'cpu_us_per_record'):.2f}×"),
        ("CPU per record ≤ 0.9× the single-thread BaseProducer loop (real broker)", "0.9×",
         f"{ratio('broker/throughput', 'aioproducer', LOOP, 'cpu_us_per_record'):.2f}×"),
        ("CPU per record ≤ 1.25× the limit, produce_batch (embedded)", "1.25×",
         f"{ratio('embedded/throughput', 'aioproducer', CEILING, 'cpu_us_per_record'):.2f}×"),
        ("CPU per record ≤ 1.25× the limit, produce_batch (real broker)", "1.25×",
         f"{ratio('broker/throughput', 'aioproducer', CEILING, 'cpu_us_per_record'):.2f}×"),
        (f"keyed ({KEYS} keys): throughput ≥ 1.3× the single-thread loop (embedded)", "1.3×",
         f"{ratio('embedded/keyed', 'aioproducer', LOOP):.2f}×"),
        (f"keyed ({KEYS} keys): throughput ≥ 1.3× the single-thread loop (real broker)", "1.3×",
         f"{ratio('broker/keyed', 'aioproducer', LOOP):.2f}×"),
        (f"keyed ({KEYS} keys): throughput ≥ 3× FutureProducer (real broker)", "3×",
         f"{ratio('broker/keyed', 'aioproducer', 'future-producer'):.2f}×"),
        ("three-node cluster (replication 3): throughput ≥ 1.3× the single-thread loop", "1.3×",
         f"{ratio('cluster/throughput', 'aioproducer', LOOP):.2f}×"),
        ("three-node cluster (replication 3): throughput ≥ 3× FutureProducer", "3×",
         f"{ratio('cluster/throughput', 'aioproducer', 'future-producer'):.2f}×"),
        ("three-node cluster (replication 3): throughput ≥ 1.0× the Java producer", "1.0×",
         f"{ratio('cluster/throughput', 'aioproducer', 'java-producer'):.2f}×"),
        (f"p99 at {LATENCY_RATE // 1000}k/s within 0.1 ms of the single-thread loop (embedded)", "≤ +0.1 ms",
         p_minus_loop("embedded", "p99_us")),
        (f"p99 at {LATENCY_RATE // 1000}k/s within 0.1 ms of the single-thread loop (real broker)", "≤ +0.1 ms",
         p_minus_loop("broker", "p99_us")),
        (f"p99.9 at {LATENCY_RATE // 1000}k/s within 1 ms of the single-thread loop (embedded)", "≤ +1 ms",
         p_minus_loop("embedded", "p999_us")),
        (f"p99.9 at {LATENCY_RATE // 1000}k/s within 1 ms of the single-thread loop (real broker)", "≤ +1 ms",
         p_minus_loop("broker", "p999_us")),
    ]
    settings = ", ".join(f"`{k}={v}`" for k, v in SETTINGS.items())
    notes_path = os.path.join(args.root, "scripts", "compare", "notes.md")
    notes = open(notes_path).read().strip() if os.path.exists(notes_path) else ""
    quick = "\n> **Smoke run (`--quick`)**: few records, one round; not a measurement.\n" if args.quick else ""
    return f"""# Benchmarks

<!-- Generated by scripts/compare/run; edit scripts/compare/compare.py or
scripts/compare/notes.md instead, then re-run it. -->
{quick}
![throughput and p99 latency of every producer on one broker](benchmarks.png)

Every producer, on the same broker, in one run of `scripts/compare/run`
({info['date']}, commit {info['commit']}, {args.rounds} round(s), clients
interleaved and rotated each round; medians, with the range of records/s).

- Machine: {info['machine']}; shared and noisy, the broker and the client share its CPUs.
- Broker: Apache Kafka {info['kafka']} (KRaft, one node, from Maven Central jars via scripts/kafka), {info['java']}.
- Embedded: librdkafka's mock cluster (`rdkafka::mocking::MockCluster`) inside the client process.
- Rust: {info['rustc']}; rdkafka {info['rdkafka']} (rdkafka-sys {info['rdkafka-sys']}).
- Python peer: {info['python']} (bundled in its wheel).
- Every client: {settings}; {SIZE} B payloads, no key (keyed runs: {KEYS:,} keys in turn); a fresh {PARTITIONS}-partition topic per run;
  every delivery report awaited before the clock stops.
- Throughput runs: 1,000,000 records (Python: 200,000). Latency runs: a fixed {LATENCY_RATE:,} records/s
  for {LATENCY_SECONDS} s.

## Targets

| target | goal | measured |
|---|---|---|
""" + "\n".join(f"| {t} | {g} | {m} |" for t, g, m in targets) + f"""

## Real broker: throughput

{table(results['broker/throughput'], THROUGHPUT_COLUMNS)}

## Real broker: latency at {LATENCY_RATE:,} records/s

{table(results['broker/latency'], LATENCY_COLUMNS)}

## Real broker: keyed throughput ({KEYS:,} keys in turn; the Rust clients)

{table(results['broker/keyed'], THROUGHPUT_COLUMNS)}

## Three-node cluster: throughput (replication factor 3, `min.insync.replicas=2`)

Three KRaft nodes on this same machine (`scripts/kafka cluster start 3`), so
each record is written three times by brokers that share the clients' two
CPUs.

{table(results['cluster/throughput'], THROUGHPUT_COLUMNS)}

## Embedded cluster: throughput

{table(results['embedded/throughput'], THROUGHPUT_COLUMNS)}

## Embedded cluster: latency at {LATENCY_RATE:,} records/s

{table(results['embedded/latency'], LATENCY_COLUMNS)}

## Embedded cluster: keyed throughput ({KEYS:,} keys in turn; the Rust clients)

{table(results['embedded/keyed'], THROUGHPUT_COLUMNS)}

{notes}

Raw results of every run: [benchmarks.json](benchmarks.json).
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True)
    parser.add_argument("--perf")
    parser.add_argument("--python")
    parser.add_argument("--render", action="store_true",
                        help="rewrite the page and chart from the last run's benchmarks.json, measuring nothing")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=None,
                        help="measure only these WHERE/SCENARIO pairs, comma-separated (e.g. cluster/throughput)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1
    out_dir = args.out or os.path.join(args.root, "docs")
    os.makedirs(out_dir, exist_ok=True)
    raw = os.path.join(out_dir, "benchmarks.json")
    if args.render:
        with open(raw) as f:
            saved = json.load(f)
        info, results, args.rounds = saved["info"], saved["results"], saved["rounds"]
    else:
        if not (args.perf and args.python):
            parser.error("--perf and --python are needed to measure")
        info = versions(args)
        results = measure(args)
        with open(raw, "w") as f:
            json.dump({"info": info, "rounds": args.rounds, "settings": SETTINGS, "results": results}, f, indent=1)
    if results.get("broker/throughput") and results.get("broker/latency"):
        chart(results, out_dir)
    with open(os.path.join(out_dir, "benchmarks.md"), "w") as f:
        f.write(page(results, info, args))
    log(f"wrote {out_dir}/benchmarks.md, benchmarks.png" + ("" if args.render else ", benchmarks.json"))


if __name__ == "__main__":
    main()
