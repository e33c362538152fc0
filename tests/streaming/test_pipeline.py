"""The stream graph's step names, pinned.

Dataflow's ``--update`` and Flink savepoints match a running job's steps to the new
graph's by name: a renamed step loses its state (or needs a ``--transform-name-mappings``
entry). This test builds the graph (nothing runs) and fails on any change to the names;
change the list only together with a note on the mapping an upgrade needs.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from streaming.options import stream_config
from streaming.pipeline import build_pipeline

# Since issue 12 every step handles one element per Kafka poll batch, and one write step
# writes every output: an --update from the per-record graph maps CorrectCatalog/* onto
# themselves, EncodeOutputs/Encode* onto EncodeOutputs/EncodeBatches and
# WriteOutputs/Produce* onto WriteOutputs/ProduceOutputs (none of them holds state);
# WriteOutputs/ProduceOutputs/EndOfStage is new and never holds data.
# Since issue 14 the stream watches its input topic for new partitions: ReadEvents/Topics
# and ReadEvents/WatchPartitions replace ReadEvents/ListPartitions. Move a running job onto
# this graph with a fresh start from the committed offsets, not an --update: the new watch
# would hand out every partition again beside the restored ReadEvents/ReadPartitions.
# Replays still list once (ListPartitions).
STREAM_STEPS = [
    "ArchiveRawEvents",
    "ArchiveRawEvents/WriteArchiveFiles",
    "CorrectCatalog",
    "CorrectCatalog/DecodeEvents",
    "CorrectCatalog/RouteOutputs",
    "CorrectCatalog/ScoreAndCorrect",
    "EncodeOutputs",
    "EncodeOutputs/EncodeBatches",
    "ReadEvents",
    "ReadEvents/Impulse",
    "ReadEvents/ReadPartitions",
    "ReadEvents/Topics",
    "ReadEvents/WatchPartitions",
    "WriteOutputs",
    "WriteOutputs/ProduceOutputs",
    "WriteOutputs/ProduceOutputs/EndOfStage",
    "WriteOutputs/ProduceOutputs/Produce",
    "WriteOutputs/ToTopics",
]


def stream_step_names(*flags: str) -> list[str]:
    options = PipelineOptions([
        "--bootstrap-servers=broker:9092", "--input-topic=in", "--output-topic=out",
        "--dead-letter-topic=dead", "--review-topic=review", "--audit-topic=audit",
        "--model-dir=/nowhere", *flags,
    ])
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, stream_config(options))
    transforms = pipeline.to_runner_api().components.transforms.values()
    # Beam's own root wrapper ("ref_AppliedPTransform_...") is not a step of the job.
    return sorted(t.unique_name for t in transforms if t.unique_name and not t.unique_name.startswith("ref_"))


def test_the_stream_graph_keeps_its_step_names() -> None:
    assert stream_step_names("--archive-dir=/tmp/archive") == STREAM_STEPS


def test_no_step_is_named_by_its_position() -> None:
    # Without the optional archive the other steps keep their names.
    names = stream_step_names()
    assert names == [n for n in STREAM_STEPS if not n.startswith("ArchiveRawEvents")]
    assert not [n for n in names if any(ch.isdigit() for ch in n.split("/")[-1])]
