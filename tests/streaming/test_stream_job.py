"""The streaming job end to end on the real broker and the local runner (Prism).

The job runs unbounded in a child process (``metafix stream``) while the test
produces events and reads the outputs, so every assertion about output is made
while the job is still running.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.eventgen import catalog_messages, produce
from harness.jobs import StreamJob, read_until
from model.profilestore import bundled_profile_dir, load_latest
from model.serving import Predictor
from transforms import records
from transforms.codec import decode_event
from transforms.policy import correct_track

pytestmark = [pytest.mark.kafka, pytest.mark.prism, pytest.mark.slow]

# Corruptions that any trained model gets right: each event, the field, the
# delivered value and the canonical value the job must write.
OBVIOUS = [
    ("obvious-duration", "duration_ms", "3:55", 235000),
    ("obvious-isrc", "isrc", "us-s1z-99-00001", "USS1Z9900001"),
    ("obvious-date", "release_date", "March 17, 2008", "2008-03-17"),
]


def _obvious_event(event_id: str, field: str, value: str) -> bytes:
    track = {
        "title": "Back in Black", "artist": "AC/DC", "album": "Back in Black", "isrc": "USS1Z9900002",
        "upc": "012345678905", "release_date": "1980-07-25", "duration_ms": "255000", "genre": "Rock",
        "explicit": "false", "track_number": "6", "language": "en", "featured_artists": [],
    }
    track[field] = value
    return json.dumps({"event_id": event_id, "entity_id": event_id, "track": track}).encode()


@pytest.fixture
def job_topics(topic_factory) -> dict[str, str]:
    return {
        "in": topic_factory("in", partitions=3),
        "out": topic_factory("out", partitions=1),
        "review": topic_factory("review", partitions=1),
        "audit": topic_factory("audit", partitions=1),
        "dead": topic_factory("dead", partitions=1),
    }


def test_stream_job_corrects_events_while_it_runs(kafka_bootstrap, job_topics, tiny_model_dir, tmp_path):
    job = StreamJob(kafka_bootstrap, job_topics, tiny_model_dir, tmp_path / "job.log",
                    "--start-from", "earliest").start()
    try:
        messages = list(catalog_messages(300, seed=3, bad_every=30))
        sent = produce(kafka_bootstrap, job_topics["in"], iter(messages))
        obvious = produce(kafka_bootstrap, job_topics["in"], iter(
            type(messages[0])(e.encode(), _obvious_event(e, f, v), e, None) for e, f, v, _ in OBVIOUS))
        sent += obvious
        out_t, dead_t, audit_t = job_topics["out"], job_topics["dead"], job_topics["audit"]

        review_t = job_topics["review"]

        # Review and audit are read beside the outputs, so their records can
        # arrive after the last output: wait until every output's audit entries
        # and review copy are in too.
        def done(s: dict) -> bool:
            outs = [r for _, r in s[out_t]]
            return (len(outs) + len(s[dead_t]) >= len(sent)
                    and len(s[audit_t]) >= sum(len(r["corrections"]) for r in outs)
                    and len(s[review_t]) >= sum(1 for r in outs if r["review"]))

        seen = read_until(kafka_bootstrap, [out_t, dead_t, review_t, audit_t], done, 240, job)
        assert job.alive(), "outputs must appear while the unbounded job is still running"
        # The command caps glibc's malloc arenas for itself (resident memory stays flat).
        environ = Path(f"/proc/{job.pid}/environ").read_bytes().split(b"\0")
        assert b"MALLOC_ARENA_MAX=2" in environ
    finally:
        job.stop()
    log = job.log_text()

    outputs = [r for _, r in seen[out_t]]
    dead = [r for _, r in seen[dead_t]]
    # Every input offset comes out exactly once, corrected or as a dead letter.
    out_coords = sorted((r["input"]["partition"], r["input"]["offset"]) for r in outputs)
    dead_coords = sorted((d["partition"], d["offset"]) for d in dead)
    assert sorted(out_coords + dead_coords) == sorted((p, o) for _, p, o in sent)
    assert len(set(out_coords)) == len(out_coords)

    # Bad payloads are dead letters that keep their bytes and name the reason.
    bad = {(p, o): m for m, p, o in sent if m.bad_kind}
    assert {(d["partition"], d["offset"]): d["error_type"] for d in dead} == {k: m.bad_kind for k, m in bad.items()}
    assert all(d["payload"] == bad[(d["partition"], d["offset"])].value for d in dead)

    # Each output is what the pure decision logic gives for that input with the same model.
    predictor = Predictor.load(tiny_model_dir)
    # Without --profile the job uses the profile bundled with the model, if it has one.
    profile_dir = bundled_profile_dir(predictor.version_dir)
    profile = load_latest(profile_dir) if profile_dir is not None else None
    by_coords = {(p, o): m for m, p, o in sent}
    sample = outputs[:50]
    events = [decode_event(by_coords[(r["input"]["partition"], r["input"]["offset"])].value) for r in sample]
    for record, event, scores in zip(sample, events, predictor.predict([e["track"] for e in events]), strict=True):
        result = correct_track(event["track"], scores, thresholds=predictor.thresholds,
                               model_version=predictor.version, profile=profile, source=event.get("source"))
        assert record["profile_version"] == (profile.version if profile is not None else None)
        assert record["track"] == result.track
        assert record["corrections"] == result.corrections
        assert record["record_key"] == records.record_key(event["event_id"], predictor.version)

    # Obvious corruptions are corrected, with an audit entry each.
    by_event = {r["event_id"]: r for r in outputs}
    audit = [a for _, a in seen[audit_t]]
    for event_id, field, before, after in OBVIOUS:
        track = by_event[event_id]["track"]
        value = track[field].isoformat() if field == "release_date" else track[field]
        assert value == after, (event_id, by_event[event_id]["corrections"], by_event[event_id]["review"])
        assert any(a["event_id"] == event_id and a["field"] == field and a["before"] == before for a in audit)

    # Audit has one entry per correction; review holds exactly the flagged records.
    assert len(audit) == sum(len(r["corrections"]) for r in outputs)
    assert sorted(r["event_id"] for _, r in seen[review_t]) == sorted(
        r["event_id"] for r in outputs if r["review"])
    assert "metafix summary" in log


def test_stream_job_fails_fast_on_a_missing_topic_and_model(kafka_bootstrap, job_topics, tiny_model_dir, tmp_path):
    topics = dict(job_topics, out="no-such-topic-xyz")
    job = StreamJob(kafka_bootstrap, topics, tiny_model_dir, tmp_path / "missing-topic.log").start()
    job.wait(timeout_s=120)
    out = job.log_text()
    assert job.returncode == 2
    assert "--output-topic: topic 'no-such-topic-xyz' does not exist" in out
    assert "Traceback" not in out

    job = StreamJob(kafka_bootstrap, job_topics, tmp_path / "no-model", tmp_path / "missing-model.log").start()
    job.wait(timeout_s=120)
    out = job.log_text()
    assert job.returncode == 2 and "--model-dir" in out and "Traceback" not in out

    job = StreamJob("127.0.0.1:1", job_topics, tiny_model_dir, tmp_path / "no-broker.log").start()
    job.wait(timeout_s=120)
    out = job.log_text()
    assert job.returncode == 2 and "cannot reach Kafka" in out and "Traceback" not in out
