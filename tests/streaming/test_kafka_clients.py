"""The confluent client's translation of librdkafka's delivery reports into retriable or not."""

from __future__ import annotations

import confluent_kafka
import pytest

from streaming.kafka_clients import ConfluentClient, KafkaClientError, ProducerSettings


def delivery_failing_with(code: int) -> KafkaClientError:
    # No broker is needed: the report is made by hand, as librdkafka's callback would.
    producer = ConfluentClient().producer(ProducerSettings("127.0.0.1:9", 5, 1000, 1000, 16384))
    try:
        handle = producer.send("t", b"k", b"v")
        handle(confluent_kafka.KafkaError(code), None)
        with pytest.raises(KafkaClientError) as raised:
            producer.result(handle)
        return raised.value
    finally:
        producer.flush()


def test_records_in_flight_to_a_partition_that_went_away_are_retried() -> None:
    # A CI run's output-outage scenario: the output topic was deleted while records were in
    # flight to it, librdkafka failed them with _DESTROY, and the job exited instead of retrying.
    assert delivery_failing_with(confluent_kafka.KafkaError._DESTROY).retriable


def test_a_record_the_broker_refuses_for_good_is_not_retried() -> None:
    assert not delivery_failing_with(confluent_kafka.KafkaError.MSG_SIZE_TOO_LARGE).retriable
