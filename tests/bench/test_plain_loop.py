"""The bench's plain loop does the job's whole work, so its ratio to the job compares like with like;
its replay steps run a replay's whole work too."""

from __future__ import annotations

from pathlib import Path

from bench.run import MODEL_LOAD_STEP, PlainLoop, bench_replay_stages, write_event_log
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


def test_the_replay_steps_are_timed_over_the_whole_log(tiny_model_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "events.avro"
    write_event_log(log, 5_000)  # three ranges of whole blocks

    stages = bench_replay_stages(str(tiny_model_dir), log)

    assert list(stages) == [
        "list ranges (block headers)", "read ranges (fastavro), profile pass", "profile (tracks into the builder)",
        "read ranges (fastavro), correcting pass", "decode (validate rows)", "score, policy and correctors",
        "route (review, audit)", "write parts (Avro encode, deflate)", "concatenate parts", MODEL_LOAD_STEP,
    ]
    assert all(value > 0 for value in stages.values())
