"""The demo (``make demo``): the streaming job on a local broker with a realistic stream.

    python -m harness.demo [--model-dir DIR] [--events 3000] [--rate 500] [--port 9092] [--timeout 240]

Starts (or reuses) a local Kafka broker, creates fresh topics, runs
``metafix stream`` on the local runner in a child process, produces catalog
events built from real catalog records (clean and malformed, JSON and Avro,
a few undecodable), shows the corrections live as they reach the audit topic,
and stops once every event is accounted for in the output or dead-letter topic.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from kafka import KafkaConsumer

from harness.eventgen import catalog_messages, produce
from harness.jobs import StreamJob
from harness.local_kafka import LocalKafka, create_topic, port_is_open, serves_kafka
from streaming.options import REPO_ROOT, resolve_model_dir
from transforms.codec import confluent_decode

LIVE_LINES = 40


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m harness.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=int(os.environ.get("KAFKA_PORT", "9092")))
    parser.add_argument("--events", type=int, default=3000, help="events to produce (default 3000)")
    parser.add_argument("--rate", type=float, default=500.0, help="events per second (default 500)")
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--timeout", type=float, default=240.0, help="give up after this many seconds")
    return parser.parse_args(argv)


def _short(value: str | None, width: int = 38) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 2] + "…'"


def _start_broker(port: int) -> LocalKafka | None:
    broker = LocalKafka(port=port)
    if broker.is_running() or (port_is_open(port) and serves_kafka(broker.bootstrap)):
        print(f"· using the Kafka broker already running on {broker.bootstrap}")
        return None
    print(f"· starting a Kafka broker on {broker.bootstrap} …", flush=True)
    broker.start()
    return broker


def run(argv: Sequence[str] | None = None) -> int:
    args = _parse(list(argv or []))
    model_dir = resolve_model_dir(args.model_dir)
    started_broker = _start_broker(args.port)
    bootstrap = f"127.0.0.1:{args.port}"
    suffix = uuid.uuid4().hex[:8]
    topics = {name: f"demo.{name}.{suffix}" for name in ("updates", "corrected", "review", "audit", "dead-letters")}
    for name, topic in topics.items():
        create_topic(bootstrap, topic, partitions=3 if name == "updates" else 1)
    print(f"· topics: {', '.join(topics.values())}")

    log_dir = REPO_ROOT / ".state" / "demo"
    log_dir.mkdir(parents=True, exist_ok=True)
    job_log = log_dir / f"job-{suffix}.log"
    # The job's own lines and summary go to job_log; Beam's, Prism's and TensorFlow's to the full log.
    full_log = log_dir / f"job-{suffix}.full.log"
    job_topics = {"in": topics["updates"], "out": topics["corrected"], "review": topics["review"],
                  "audit": topics["audit"], "dead": topics["dead-letters"]}
    job = StreamJob(bootstrap, job_topics, model_dir, job_log, "--start-from", "earliest",
                    "--log-file", str(full_log), group_id=f"metafix-demo-{suffix}").start()
    print(f"· streaming job started (pid {job.pid}, its lines in {job_log.relative_to(REPO_ROOT)}, "
          f"full log in {full_log.relative_to(REPO_ROOT)})")

    messages = list(catalog_messages(args.events, seed=11))
    producer = threading.Thread(
        target=produce, args=(bootstrap, topics["updates"], iter(messages)), kwargs={"rate": args.rate}, daemon=True
    )
    print(f"· producing {len(messages)} catalog events at {args.rate:.0f}/s "
          f"({sum(m.bad_kind is not None for m in messages)} of them undecodable)\n")
    producer.start()
    try:
        counts = _live_view(bootstrap, topics, len(messages), job, args.timeout)
    finally:
        job.stop()
        if started_broker is not None:
            started_broker.stop()
    print("\n" + _job_summary(job_log))
    _print_accounting(len(messages), counts)
    return 0 if counts["accounted"] == len(messages) else 1


def _live_view(bootstrap: str, topics: dict[str, str], expected: int, job: StreamJob,
               timeout_s: float) -> Counter:
    consumer = KafkaConsumer(topics["corrected"], topics["audit"], topics["dead-letters"], topics["review"],
                             bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    counts: Counter = Counter()
    shown = 0
    deadline = time.monotonic() + timeout_s
    last_status = 0.0
    try:
        while counts["accounted"] < expected and time.monotonic() < deadline:
            if not job.alive():
                print(f"\nthe streaming job exited early with code {job.returncode}", file=sys.stderr)
                break
            for tp, batch in consumer.poll(timeout_ms=500).items():
                for message in batch:
                    _, record = confluent_decode(message.value)
                    if tp.topic == topics["audit"]:
                        counts[f"class:{record['error_class']}"] += 1
                        counts["corrections"] += 1
                        if shown < LIVE_LINES:
                            shown += 1
                            print(f"  {record['field']:<13} {_short(record['before'])} → {_short(record['after'])}"
                                  f"  {record['error_class']} ({record['confidence']:.2f})")
                    elif tp.topic == topics["review"]:
                        counts["review"] += 1
                    elif tp.topic == topics["dead-letters"]:
                        counts["dead_letters"] += 1
                        counts["accounted"] += 1
                        if shown < LIVE_LINES:
                            shown += 1
                            print(f"  DEAD LETTER   {record['error_type']}: {record['error_message'][:60]}")
                    else:
                        counts["corrected_records"] += 1
                        counts["accounted"] += 1
            now = time.monotonic()
            if shown >= LIVE_LINES and now - last_status > 2:
                last_status = now
                print(f"  … {counts['accounted']}/{expected} events out, {counts['corrections']} corrections, "
                      f"{counts['review']} for review, {counts['dead_letters']} dead letters", flush=True)
    finally:
        consumer.close()
    return counts


def _job_summary(log: Path) -> str:
    text = log.read_text(errors="replace")
    start = text.find("metafix summary")
    return text[start:].strip() if start >= 0 else "(the job printed no summary; see its log)"


def _print_accounting(produced: int, counts: Counter) -> None:
    print("\nDemo accounting")
    print(f"  events produced            {produced:>8}")
    print(f"  corrected records out      {counts['corrected_records']:>8}")
    print(f"  … of which for review      {counts['review']:>8}")
    print(f"  dead letters               {counts['dead_letters']:>8}")
    print(f"  lost                       {produced - counts['accounted']:>8}")
    print(f"  corrections applied        {counts['corrections']:>8}")
    for key, n in sorted(((k, v) for k, v in counts.items() if k.startswith("class:")), key=lambda kv: -kv[1]):
        print(f"    {key[6:]:<24} {n:>8}")


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
