"""Batch elements are pickled when a runner moves them, and measured without being pickled."""

from __future__ import annotations

import threading

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pipeline import PipelineVisitor

from streaming.batch_coder import ESTIMATED_BYTES_PER_RECORD, BatchCoder, BatchList
from streaming.composites import CatalogBatch, DecodedBatch
from streaming.kafka_clients import KafkaRecord
from streaming.options import stream_config
from streaming.pipeline import build_pipeline


def test_a_batch_round_trips_through_the_coder() -> None:
    records = BatchList([KafkaRecord("in", 0, 7, 1, b"k", b"v"), KafkaRecord("in", 0, 8, 2, None, b"w")])
    batch = DecodedBatch(("in", 0, 7), [(records[0], {"event_id": "e"})], [{"stage": "decode"}])
    impl = BatchCoder().get_impl()

    assert impl.decode(impl.encode(records)) == records
    assert impl.decode(impl.encode(batch)) == batch


def test_the_size_estimate_counts_records_without_encoding_them() -> None:
    impl = BatchCoder().get_impl()
    # A lock cannot be pickled: an estimate that pickled would raise.
    unpicklable = threading.Lock()
    batch = CatalogBatch(("in", 0, 0), [{"x": unpicklable}] * 3, [{}], [{}, {}], [])

    assert impl.estimate_size(batch) == 6 * ESTIMATED_BYTES_PER_RECORD
    assert impl.estimate_size(BatchList([unpicklable] * 4)) == 4 * ESTIMATED_BYTES_PER_RECORD


def test_every_batch_step_of_the_stream_uses_the_batch_coder() -> None:
    options = PipelineOptions(["--bootstrap-servers=broker:9092", "--input-topic=in", "--output-topic=out",
                               "--dead-letter-topic=dead", "--review-topic=review", "--audit-topic=audit",
                               "--model-dir=/nowhere"])
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, stream_config(options))
    coders: dict[str, str] = {}

    class Coders(PipelineVisitor):
        def visit_transform(self, node) -> None:
            for pcoll in node.outputs.values():
                coders[node.full_label] = type(beam.coders.registry.get_coder(pcoll.element_type)).__name__

    pipeline.visit(Coders())
    batch_steps = ["ReadEvents/ReadPartitions", "CorrectCatalog/DecodeEvents", "CorrectCatalog/ScoreAndCorrect",
                   "CorrectCatalog/RouteOutputs", "EncodeOutputs/EncodeBatches", "WriteOutputs/ToTopics"]
    assert {step: coders[step] for step in batch_steps} == dict.fromkeys(batch_steps, "BatchCoder")
