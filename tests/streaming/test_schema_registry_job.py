"""The streaming job with a schema registry: real broker, real Apicurio Registry, Prism.

Producers use confluent-kafka's ``AvroSerializer`` through the registry: a v1 producer
with metafix's own event schema, a v2 producer whose schema adds an optional field and
drops a defaulted one, and one whose ``event_id`` became a number. The outputs are read
back with confluent-kafka's registry-aware ``AvroDeserializer``. Then the registry goes
away while a message with a schema id the job has not fetched yet waits: the job retries,
then fails with the reason and leaves that message's offset uncommitted. One job run, on a
registry of its own (it is stopped mid-test), checks it all.
"""

from __future__ import annotations

import json
import struct
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from harness.jobs import JobExited, StreamJob, committed_offsets
from harness.local_kafka import free_port
from harness.local_registry import LocalRegistry
from schemas import schema_text
from transforms import codec
from transforms.fields import TRACK_FIELDS

pytestmark = [pytest.mark.kafka, pytest.mark.prism, pytest.mark.registry, pytest.mark.slow]


def _schema(change) -> str:
    raw = json.loads(schema_text("catalog_update_event.avsc"))
    change(raw)
    return json.dumps(raw)


def _v2(raw: dict) -> None:
    raw["fields"] = [f for f in raw["fields"] if f["name"] != "source"]
    raw["fields"].append({"name": "priority", "type": ["null", "int"], "default": None})


def _numeric_event_id(raw: dict) -> None:
    raw["fields"][0]["type"] = "long"


V1 = schema_text("catalog_update_event.avsc")
V2 = _schema(_v2)
INCOMPATIBLE = _schema(_numeric_event_id)


def _event(event_id: str, duration: str) -> dict:
    track = {f: None for f in TRACK_FIELDS} | {
        "title": "Back in Black", "artist": "AC/DC", "album": "Back in Black", "isrc": "USS1Z9900002",
        "release_date": "1980-07-25", "duration_ms": duration, "genre": "Rock", "featured_artists": [],
    }
    return {"event_id": event_id, "event_time": None, "entity_id": event_id, "source": "label-a", "track": track}


def _v3(raw: dict) -> None:
    raw["fields"].append({"name": "region", "type": ["null", "string"], "default": None})


V3 = _schema(_v3)


@pytest.fixture
def own_registry(tmp_path) -> LocalRegistry:
    registry = LocalRegistry(port=free_port(), state_dir=tmp_path / "registry")
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture
def job_topics(topic_factory) -> dict[str, str]:
    # One input partition: the order of the input is the order the job reads it in.
    return {
        "in": topic_factory("in", partitions=1),
        "out": topic_factory("out", partitions=1),
        "review": topic_factory("review", partitions=1),
        "audit": topic_factory("audit", partitions=1),
        "dead": topic_factory("dead", partitions=1),
    }


def _produce(bootstrap: str, topic: str, client: SchemaRegistryClient) -> dict[str, list]:
    """v1 events, then the bad ones, then v2 events: the v2 ones show the job got past the bad."""
    v1 = AvroSerializer(client, V1)
    v2 = AvroSerializer(client, V2)
    # Another subject, so the input topic's own subject keeps only compatible versions.
    incompatible = AvroSerializer(client, INCOMPATIBLE, conf={
        "subject.name.strategy": lambda ctx, record_name: f"{ctx.topic}-incompatible-value"})
    ctx = SerializationContext(topic, MessageField.VALUE)
    sent: dict[str, list] = {"v1": [], "v2": [], "unknown": [], "incompatible": []}
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(10):
        event = _event(f"v1-{i}", "3:55" if i % 2 else "255000")
        producer.produce(topic, key=event["entity_id"], value=v1(event, ctx))
        sent["v1"].append(event)
    for i in range(2):
        value = incompatible({**_event("x", "255000"), "event_id": 1000 + i}, ctx)
        producer.produce(topic, value=value)
        sent["incompatible"].append(value)
        value = b"\x00" + struct.pack(">I", 900_000 + i) + b"\x02\x02x"
        producer.produce(topic, value=value)
        sent["unknown"].append(value)
    for i in range(10):
        event = {k: v for k, v in _event(f"v2-{i}", "3:55" if i % 2 else "255000").items() if k != "source"}
        event["priority"] = i
        producer.produce(topic, key=event["entity_id"], value=v2(event, ctx))
        sent["v2"].append(event)
    assert producer.flush(30) == 0
    return sent


def _read(bootstrap: str, topics: dict[str, str], client: SchemaRegistryClient, done, job: StreamJob,
          timeout_s: float) -> dict[str, list]:
    """(schema id, record) per output, decoded by confluent-kafka's registry-aware deserializer."""
    deserialize = AvroDeserializer(client)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(list(topics.values()))
    names = {topic: name for name, topic in topics.items()}
    seen: dict[str, list] = {name: [] for name in topics}
    deadline = time.monotonic() + timeout_s
    try:
        while not done(seen) and time.monotonic() < deadline:
            if not job.alive():
                raise JobExited(job)
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            schema_id = struct.unpack(">I", message.value()[1:5])[0]
            record = deserialize(message.value(), SerializationContext(message.topic(), MessageField.VALUE))
            seen[names[message.topic()]].append((schema_id, record))
    finally:
        consumer.close()
    return seen


def test_stream_job_reads_v1_and_v2_producers_through_the_registry(
        kafka_bootstrap, job_topics, own_registry, tiny_model_dir, tmp_path):
    # A timeout, so that a request the registry never answers is retried by the client
    # (once, in CI, the deserializer's first lookup waited for an answer with no end).
    client = SchemaRegistryClient({"url": own_registry.url, "timeout": 10})
    sent = _produce(kafka_bootstrap, job_topics["in"], client)
    # Serialized now, sent once the registry is gone: its schema id is new to the job.
    ctx = SerializationContext(job_topics["in"], MessageField.VALUE)
    v3_value = AvroSerializer(client, V3)({**_event("v3-0", "255000"), "region": "eu"}, ctx)
    job = StreamJob(kafka_bootstrap, job_topics, tiny_model_dir, tmp_path / "job.log", "--start-from", "earliest",
                    "--schema-registry-url", own_registry.url, "--schema-registry-retry-timeout-s", "3").start()
    outputs = {name: topic for name, topic in job_topics.items() if name != "in"}
    good = len(sent["v1"]) + len(sent["v2"])
    bad = len(sent["unknown"]) + len(sent["incompatible"])

    def done(seen: dict) -> bool:
        corrected = [r for _, r in seen["out"]]
        return (len(corrected) >= good and len(seen["dead"]) >= bad
                and len(seen["audit"]) >= sum(len(r["corrections"]) for r in corrected)
                and len(seen["review"]) >= sum(1 for r in corrected if r["review"]))

    try:
        seen = _read(kafka_bootstrap, outputs, client, done, job, 240)
        assert job.alive(), "the job stays up after unknown and incompatible schemas"
        assert done(seen), job.log_tail()
        registered = {name: client.get_latest_version(f"{topic}-value").schema_id for name, topic in outputs.items()}

        own_registry.stop()
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
        producer.produce(job_topics["in"], value=v3_value)
        assert producer.flush(30) == 0
        returncode = job.wait(timeout_s=120)
    finally:
        job.stop()

    # An outage past the retry bound fails the job with the reason, and the message it could
    # not read is not committed: a restart reads it again (nothing became a dead letter).
    assert returncode == 1, job.log_tail()
    last = job.log_text().strip().splitlines()[-1]
    assert last.startswith("metafix stream: the pipeline failed: ") and "schema registry: " in last, last
    v3_offset = len(sent["v1"]) + len(sent["v2"]) + len(sent["unknown"]) + len(sent["incompatible"])
    assert committed_offsets(kafka_bootstrap, f"g-{job_topics['in']}").get(0, 0) <= v3_offset

    # Every output is framed with the id of its schema under <topic>-value.
    for name in outputs:
        assert {schema_id for schema_id, _ in seen[name]} <= {registered[name]}, name

    # v1 and v2 events are all corrected; v2's dropped field takes the reader's default.
    corrected = {r["event_id"]: r for _, r in seen["out"]}
    assert sorted(corrected) == sorted(e["event_id"] for e in sent["v1"] + sent["v2"])
    assert all(corrected[e["event_id"]]["source"] == "label-a" for e in sent["v1"])
    assert all(corrected[e["event_id"]]["source"] is None for e in sent["v2"])
    # "3:55" is corrected to milliseconds whichever schema the event was written with.
    for event in sent["v1"] + sent["v2"]:
        expected = 235000 if event["track"]["duration_ms"] == "3:55" else 255000
        assert corrected[event["event_id"]]["track"]["duration_ms"] == expected, corrected[event["event_id"]]
    audit = [a for _, a in seen["audit"]]
    assert {a["event_id"] for a in audit if a["field"] == "duration_ms"} == {
        e["event_id"] for e in sent["v1"] + sent["v2"] if e["track"]["duration_ms"] == "3:55"}

    # Unknown ids and unresolvable writer schemas are dead letters that keep their bytes.
    dead = {bytes(d["payload"]): d for _, d in seen["dead"]}
    assert {p: dead[p]["error_type"] for p in sent["unknown"]} == dict.fromkeys(sent["unknown"],
                                                                               codec.UNKNOWN_SCHEMA_ID)
    assert {p: dead[p]["error_type"] for p in sent["incompatible"]} == dict.fromkeys(sent["incompatible"],
                                                                                    codec.INCOMPATIBLE_SCHEMA)
