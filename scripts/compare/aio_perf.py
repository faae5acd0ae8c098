#!/usr/bin/env python3
"""The Python peer: confluent_kafka.aio.AIOProducer under the same load as the
perf tool, printing the same JSON line.

Each record's latency runs from the moment it was due (now, or its slot in
the fixed schedule with --rate) to the moment its delivery future completed
on the event loop, which is when an asyncio application learns of it.
"""
import argparse
import asyncio
import json
import resource
import sys
import time

from confluent_kafka.aio import AIOProducer


def percentile(sorted_values, p):
    if not sorted_values:
        return 0
    rank = round(p / 100 * (len(sorted_values) - 1))
    return sorted_values[min(rank, len(sorted_values) - 1)]


async def run(args):
    conf = {"bootstrap.servers": args.brokers, "acks": "all", "enable.idempotence": "true"}
    for kv in args.property:
        key, value = kv.split("=", 1)
        conf[key] = value
    kwargs = {}
    if args.batch_size is not None:
        kwargs["batch_size"] = args.batch_size
    producer = AIOProducer(conf, **kwargs)
    payload = b"x" * args.size
    # Warm-up: connect and learn the topic's metadata before timing.
    await (await producer.produce(args.topic, value=b"warm-up"))

    latencies = []
    failures = []
    pending = []
    interval = 1.0 / args.rate if args.rate else None
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()

    def done(future, due):
        latencies.append(time.perf_counter() - start - due)
        if future.cancelled() or future.exception() is not None:
            failures.append(str(future.exception()))

    for i in range(args.messages):
        if interval is None:
            due = time.perf_counter() - start
        else:
            due = i * interval
            ahead = due - (time.perf_counter() - start)
            if ahead > 0.001:
                await asyncio.sleep(ahead)
        future = await producer.produce(args.topic, value=payload)
        future.add_done_callback(lambda f, due=due: done(f, due))
        pending.append(future)
    await producer.flush()
    await asyncio.gather(*pending, return_exceptions=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    await producer.close()

    latencies.sort()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    name = "python-aioproducer" if args.batch_size is None else f"python-aioproducer-batch{args.batch_size}"
    us = lambda s: round(s * 1e6)
    print(json.dumps({
        "client": name,
        "messages": args.messages,
        "size": args.size,
        "partitions": args.partitions,
        "rate": args.rate,
        "seconds": round(elapsed, 3),
        "records_per_sec": round(args.messages / elapsed),
        "mb_per_sec": round(args.messages * args.size / elapsed / 1e6, 2),
        "cpu_us_per_record": round(cpu * 1e6 / args.messages, 3),
        "peak_rss_mib": round(after.ru_maxrss / 1024, 1),
        "p50_us": us(percentile(latencies, 50)),
        "p99_us": us(percentile(latencies, 99)),
        "p999_us": us(percentile(latencies, 99.9)),
        "max_us": us(latencies[-1] if latencies else 0),
        "delivered": args.messages - len(failures),
        "failed": len(failures),
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("-X", dest="property", action="append", default=[])
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
