"""Reliability: no event is lost under crashes, broker faults and hostile input.

The scenarios are those of ``make chaos`` (``harness/chaos.py``), with fewer events:
each runs the real job (``metafix stream`` on Prism, in a child process) against a real
broker, injects a fault, and accounts for every input by its coordinates in the decoded
output and dead-letter topics. Then the writer's retries on their own, model faults at
start and in a pipeline, and the SASL listener. The job's scenarios and the writer's run
once per Kafka client.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import apache_beam as beam
import psutil
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from kafka import KafkaConsumer

from harness.chaos import (
    Env,
    ScenarioResult,
    broker_restart,
    crash_restart,
    hostile_input,
    output_refused,
    output_unavailable,
    sasl_end_to_end,
)
from harness.eventgen import catalog_messages, produce
from harness.jobs import StreamJob, read_until
from harness.local_kafka import create_topic, delete_topics, unique_topic_name
from model.serving import resolve_version_dir
from streaming.kafka_clients import CLIENT_NAMES
from streaming.kafkaio import DEFAULT_MAX_RECORDS_PER_POLL, ProducerConfig, WriteToKafka

pytestmark = [pytest.mark.kafka, pytest.mark.prism, pytest.mark.slow]

# The most records one bundle of the job can hold: --max-records-per-poll for each of the
# input's 3 partitions.
IN_FLIGHT = 3 * DEFAULT_MAX_RECORDS_PER_POLL


@pytest.fixture(params=CLIENT_NAMES)
def client(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def env(kafka_bootstrap: str, tiny_model_dir: str, tmp_path: Path, client: str) -> Env:
    return Env(kafka_bootstrap, tiny_model_dir, tmp_path, timeout_s=300, kafka_client=client)


def assert_nothing_lost(result: ScenarioResult) -> None:
    assert result.lost == 0, result.checks.get("lost_sample")
    assert result.checks["complete"]
    # Every output names an input that was sent, and copies of one input agree on its key.
    assert result.checks["unexpected"] == 0
    assert result.checks["key_conflicts"] == 0
    assert result.out + result.dead_letters - result.duplicates == result.events_in


def test_a_killed_job_restarted_from_committed_offsets_loses_nothing(env: Env) -> None:
    # Small bundles, so that the job commits several times while it works through the events.
    result = crash_restart(env, events=4000, kills=2, rate=None, max_records_per_poll=200)

    assert_nothing_lost(result)
    assert result.checks["job_alive"]
    for kill in result.checks["kills"]:
        # The job had committed offsets when it was killed, and only past written records.
        assert kill["committed"]
        assert kill["committed_but_unwritten"] == 0
    # What comes out twice is at most what was written past the last commit before a kill.
    assert result.duplicates <= result.checks["duplicate_bound"]


def test_the_job_rides_out_a_broker_restart(env: Env) -> None:
    result = broker_restart(env, events=4000, outage_s=8, rate=800)

    assert_nothing_lost(result)
    assert result.checks["job_alive"]
    assert result.duplicates <= IN_FLIGHT


def test_offsets_are_not_committed_past_records_the_job_could_not_write(env: Env) -> None:
    result = output_unavailable(env, events=3000, outage_s=12)

    # While the output topic was gone the job kept running, and every offset it had
    # committed belonged to a record that had come out.
    assert result.checks["job_alive_during_outage"]
    assert result.checks["committed_but_unwritten"] == 0
    assert_nothing_lost(result)
    assert result.checks["job_alive"]


def test_a_job_that_cannot_write_stops_and_its_restart_loses_nothing(env: Env) -> None:
    result = output_refused(env, events=1000)

    # The output topic refused the records for good: the job stopped, having committed
    # nothing it had not written; fixed and restarted from there, it got everything out.
    assert result.checks["first_exit"] == 1
    assert result.checks["committed_but_unwritten"] == 0
    assert_nothing_lost(result)
    assert result.checks["job_alive"]


def test_hostile_payloads_come_out_as_dead_letters_with_their_reason(env: Env) -> None:
    result = hostile_input(env, events=10_000, normal=1000)

    assert_nothing_lost(result)
    assert result.checks["job_alive"]
    # Each payload met the pure decoder's verdict: a dead letter with its reason (and its
    # bytes, cut to 64 KiB), or an output for a valid but odd event.
    assert result.checks["wrong_fate"] == 0, result.checks["wrong_fate_sample"]
    reasons = result.checks["reasons"]
    assert reasons["decode.payload_too_large"] >= 4
    assert reasons["encode.OutputTooLarge"] >= 1
    assert {"decode.invalid_utf8", "decode.truncated_avro", "decode.corrupt_avro", "decode.unknown_schema_id",
            "decode.wrong_schema_id", "decode.json_too_deep", "decode.wrong_type",
            "decode.missing_event_id", "decode.invalid_unicode"} <= reasons.keys()
    assert result.out > 1000
    # Bounded: the job idles at about 1 GB; a model batch padded to a 1 MB title took 20.
    assert result.peak_rss_mb < 3 * 1024


def test_the_job_works_through_sasl_and_never_shows_the_password(env: Env) -> None:
    result = sasl_end_to_end(env, events=500)

    assert result.checks["wrong_password_exit"] == 2
    [message] = result.checks["wrong_password_output"]
    assert "SASL authentication" in message and "metafix-job" in message
    assert_nothing_lost(result)
    assert result.checks["metrics_file_written"]
    assert result.checks["password_in_job_output"] == 0
    assert result.checks["password_in_dead_letters"] == 0


def test_a_corrupt_model_fails_the_job_at_start(kafka_bootstrap, topic_factory, tiny_model_dir, tmp_path) -> None:
    corrupt = tmp_path / "corrupt-model"
    shutil.copytree(resolve_version_dir(tiny_model_dir), corrupt)
    (corrupt / "saved_model.pb").write_bytes(b"\x08\x01garbage, not a SavedModel" * 10)
    topics = {name: topic_factory(name, partitions=1) for name in ("in", "out", "review", "audit", "dead")}

    job = StreamJob(kafka_bootstrap, topics, corrupt, tmp_path / "job.log").start()
    job.wait(timeout_s=180)
    out = job.log_text()

    assert job.returncode == 2
    assert "--model-dir: cannot load the SavedModel" in out
    assert "Traceback" not in out


# The writer on its own: retries while a topic is missing, and gives up past its bound.


def read_values(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             group_id=None, consumer_timeout_ms=10_000)
    try:
        return [m.value for _, m in zip(range(expected), consumer, strict=False)]
    finally:
        consumer.close()


def test_a_write_to_a_missing_topic_is_retried_until_the_topic_exists(kafka_bootstrap, client) -> None:
    topic = unique_topic_name("late")
    pairs = [(b"k%d" % i, b"v%d" % i) for i in range(20)]
    # The topic appears while the writer is already retrying.
    appears = threading.Timer(3.0, create_topic, (kafka_bootstrap, topic, 1))
    appears.start()
    try:
        with BeamTestPipeline() as p:
            (p | "Pairs" >> beam.Create(pairs)
               | "Write" >> WriteToKafka(ProducerConfig(kafka_bootstrap, max_block_ms=500, client=client), topic))
    finally:
        appears.join()

    try:
        assert sorted(read_values(kafka_bootstrap, topic, 20)) == sorted(v for _, v in pairs)
    finally:
        delete_topics(kafka_bootstrap, [topic])


def test_a_write_fails_its_bundle_once_the_retry_bound_is_spent(kafka_bootstrap, client) -> None:
    config = ProducerConfig(kafka_bootstrap, max_block_ms=300, retry_timeout_ms=1500, client=client)
    p = BeamTestPipeline()
    p | "Pairs" >> beam.Create([(b"k", b"v")]) | "Write" >> WriteToKafka(config, unique_topic_name("never"))

    # The runner re-raises the writer's KafkaWriteError with its message: kafka-python's send()
    # times out waiting for the topic's metadata, librdkafka reports the topic unknown.
    reason = {"kafka-python": "KafkaTimeoutError", "confluent": "_UNKNOWN_TOPIC|UNKNOWN_TOPIC_OR_PART"}[client]
    with pytest.raises(Exception, match=f"failed for .* s, giving up: ({reason})"):
        p.run().wait_until_finish()


def test_the_job_exits_with_one_line_when_its_runner_dies(kafka_bootstrap, topic_factory, tiny_model_dir,
                                                         tmp_path) -> None:
    topics = {"in": topic_factory("runner-in", partitions=1),
              **{name: topic_factory(f"runner-{name}", partitions=1) for name in ("out", "review", "audit", "dead")}}
    job = StreamJob(kafka_bootstrap, topics, tiny_model_dir, tmp_path / "job.log", "--start-from", "earliest").start()
    try:
        sent = produce(kafka_bootstrap, topics["in"], catalog_messages(20, seed=5, bad_every=0))
        read_until(kafka_bootstrap, [topics["out"]], lambda s: len(s[topics["out"]]) >= len(sent),
                   timeout_s=240, job=job)
        [runner] = [p for p in psutil.Process(job.pid).children(recursive=True) if p.name() == "prism"]

        runner.kill()
        # A supervisor restarts a job that exits; one that hangs with a dead runner stays down.
        returncode = job.wait(timeout_s=120)
    finally:
        job.stop()

    # The last line says why, whatever the runner's threads logged before it.
    assert returncode == 1
    last = job.log_text().strip().splitlines()[-1]
    assert last.startswith("metafix stream: the pipeline failed: lost the runner: UNAVAILABLE"), job.log_tail()
