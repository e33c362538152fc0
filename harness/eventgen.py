"""A realistic stream of catalog-update events for the demo, the tests and the benchmarks.

Events are built from the held-out (test-split) seed records with the corruption
generator: real titles and artists, clean and malformed, sent as JSON or as
Confluent-framed Avro, with a few undecodable payloads mixed in::

    for message in catalog_messages(1000, seed=7):
        producer.send(topic, key=message.key, value=message.value)
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from kafka import KafkaProducer

from model.training.corrupt import Example, generate, to_event
from model.training.data import DEFAULT_DATA_DIR, load_seeds, split_seeds
from transforms import codec

# Payloads that no decoder accepts, one of each kind the dead-letter path names.
BAD_PAYLOADS: tuple[tuple[str, bytes], ...] = (
    ("invalid_json", b'{"event_id": "broken", "track": {"title": "Half a rec'),
    ("invalid_utf8", b'{"event_id": "\xff\xfe", "track": {}}'),
    ("missing_event_id", b'{"track": {"title": "No Id"}}'),
    ("unknown_schema_id", b"\x00\x00\x00\x03\xe7\x02\x04ab"),
    ("truncated_avro", b"\x00\x00\x00\x00\x01\x08e-"),
    ("wrong_type", b'{"event_id": "typed", "track": {"title": {"nested": true}}}'),
)


@dataclass(frozen=True)
class Message:
    key: bytes | None
    value: bytes
    event_id: str | None
    example: Example | None
    bad_kind: str | None = None


@cache
def _test_seeds(data_dir: str) -> tuple:
    _, _, test = split_seeds(load_seeds(data_dir))
    return tuple(test)


def catalog_messages(
    n: int,
    *,
    seed: int = 7,
    bad_every: int = 97,
    avro_share: float = 0.3,
    corruption_rate: float = 0.5,
    data_dir: str | Path = DEFAULT_DATA_DIR,
    id_prefix: str = "evt",
) -> Iterator[Message]:
    """``n`` messages; every ``bad_every``-th is an undecodable payload (0 disables them)."""
    seeds = list(_test_seeds(str(data_dir)))
    copies = max(1, -(-n // len(seeds)))
    examples = generate(seeds, seed=seed, copies=copies, corruption_rate=corruption_rate)
    avro_every = round(1 / avro_share) if avro_share > 0 else 0
    bad_index = 0
    for i in range(n):
        if bad_every and i % bad_every == bad_every - 1:
            kind, payload = BAD_PAYLOADS[bad_index % len(BAD_PAYLOADS)]
            bad_index += 1
            yield Message(f"bad-{i}".encode(), payload, None, None, kind)
            continue
        example = examples[i % len(examples)]
        event_id = f"{id_prefix}-{seed}-{i:08d}"
        event = to_event(example, event_id, source="demo-distributor",
                         event_time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        if avro_every and i % avro_every == 0:
            value = codec.encode_event(event)
        else:
            value = json.dumps(event, ensure_ascii=False).encode("utf-8")
        yield Message(event["entity_id"].encode("utf-8"), value, event_id, example)


def produce(
    bootstrap: str,
    topic: str,
    messages: Iterable[Message],
    *,
    rate: float | None = None,
    **producer_config,
) -> list[tuple[Message, int, int]]:
    """Sends messages (at ``rate`` per second if given); returns (message, partition, offset) for each."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, acks="all", **producer_config)
    sent = []
    started = time.monotonic()
    try:
        for i, message in enumerate(messages):
            if rate:
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            sent.append((message, producer.send(topic, key=message.key, value=message.value)))
        producer.flush()
        landed = []
        for m, future in sent:
            meta = future.get(timeout=60)
            landed.append((m, meta.partition, meta.offset))
        return landed
    finally:
        producer.close()
