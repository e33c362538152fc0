"""Event-log files (JSON lines, Avro events, the stream's Avro archive) as Kafka-like records.

``metafix replay`` and ``metafix profile`` read logs the same way::

    records = p | "ReadEventLog" >> ReadEventLog("archive/**/*.avro")
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.coders.coders import BytesCoder

from streaming.kafkaio import KafkaRecord
from transforms import codec


def _from_text_line(file_and_line: tuple[str, bytes]) -> KafkaRecord:
    # The file name stands in for the topic, so a dead letter says where its line came from.
    filename, line = file_and_line
    return KafkaRecord(filename, None, None, None, None, line)


def _from_avro(row: dict[str, Any]) -> KafkaRecord:
    if "value" in row and "event_id" not in row:
        return KafkaRecord(row["topic"], row["partition"], row["offset"], row["timestamp_ms"], row["key"], row["value"])
    return KafkaRecord(None, None, None, None, None, codec.encode_event(row))


class ReadEventLog(beam.PTransform):
    """Event-log files (JSON lines or Avro) as Kafka-like records."""

    def __init__(self, pattern: str):
        super().__init__()
        self._pattern = pattern

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        if self._pattern.endswith(".avro"):
            return (
                pbegin
                | "ReadAvro" >> beam.io.ReadFromAvro(self._pattern)
                | "AvroToRecords" >> beam.Map(_from_avro)
            )
        return (
            pbegin
            | "ReadLines" >> beam.io.ReadFromTextWithFilename(self._pattern, coder=BytesCoder())
            | "SkipBlankLines" >> beam.Filter(lambda file_and_line: bool(file_and_line[1].strip()))
            | "LinesToRecords" >> beam.Map(_from_text_line)
        )
