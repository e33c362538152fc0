"""The bench's plain loop does the job's whole work, so its ratio to the job compares like with like."""

from __future__ import annotations

from pathlib import Path

from bench.run import PlainLoop
from harness.eventgen import catalog_messages
from streaming.kafka_clients import KafkaRecord
from transforms import codec


def test_the_plain_loop_decodes_corrects_routes_and_encodes_every_record(tiny_model_dir: Path) -> None:
    messages = list(catalog_messages(60, seed=3, bad_every=10))
    batch = [KafkaRecord("in", 0, i, 1_700_000_000_000 + i, m.key, m.value) for i, m in enumerate(messages)]

    encoded = PlainLoop(str(tiny_model_dir), batch_size=16).outputs(batch)

    assert len(encoded.corrected) == 54 and len(encoded.dead_letters) == 6
    corrected = [codec.confluent_decode(value)[1] for _, value in encoded.corrected]
    assert [r["input"]["offset"] for r in corrected] == [i for i in range(60) if i % 10 != 9]
    reviewed = {r["event_id"] for r in corrected if r["review"]}
    assert {codec.confluent_decode(value)[1]["event_id"] for _, value in encoded.review} == reviewed
    audited = sum(len(r["corrections"]) for r in corrected)
    assert len(encoded.audit) == audited
