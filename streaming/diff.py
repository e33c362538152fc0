"""``metafix diff``: what a new model would change, before it is promoted.

    metafix diff --input events.jsonl --model-a model/export/<old> --model-b model/export/<new> \\
                 [--json diff.json] [--examples 3]

Replays the same log with both models (the replay pipeline, unchanged) and
compares the outputs event by event: per field, which values changed and why
(the error class each model applied, ``-`` for none), and which review flags
appeared or went away, with counts and a few examples of each.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from streaming.replay import run as replay
from transforms.fields import TRACK_FIELDS

NONE = "-"


def _applied(record: Mapping[str, Any]) -> dict[str, str]:
    return {c["field"]: c["error_class"] for c in record["corrections"]}


def _flags(record: Mapping[str, Any]) -> set[tuple[str, str]]:
    return {(r["field"], r["error_class"]) for r in record["review"]}


def compare(a: Iterable[Mapping[str, Any]], b: Iterable[Mapping[str, Any]], examples: int = 3) -> dict[str, Any]:
    """Differences between two replays of one log, keyed by event id."""
    by_id_a = {r["event_id"]: r for r in a}
    by_id_b = {r["event_id"]: r for r in b}
    changes: Counter[tuple[str, str, str]] = Counter()
    flag_changes: Counter[tuple[str, str, str]] = Counter()
    samples: dict[str, list] = defaultdict(list)
    changed_events = 0
    for event_id in sorted(by_id_a.keys() & by_id_b.keys()):
        ra, rb = by_id_a[event_id], by_id_b[event_id]
        applied_a, applied_b = _applied(ra), _applied(rb)
        changed = False
        for field in TRACK_FIELDS:
            va, vb = ra["track"][field], rb["track"][field]
            if va != vb:
                key = (field, applied_a.get(field, NONE), applied_b.get(field, NONE))
                changes[key] += 1
                changed = True
                if len(samples[str(key)]) < examples:
                    samples[str(key)].append({"event_id": event_id, "a": va, "b": vb})
        fa, fb = _flags(ra), _flags(rb)
        for field, cls in fa ^ fb:
            flag_changes[(field, cls, "only_a" if (field, cls) in fa else "only_b")] += 1
            changed = True
        changed_events += changed
    return {
        "events_a": len(by_id_a),
        "events_b": len(by_id_b),
        "only_in_a": len(by_id_a.keys() - by_id_b.keys()),
        "only_in_b": len(by_id_b.keys() - by_id_a.keys()),
        "events_changed": changed_events,
        "value_changes": [
            {"field": f, "class_a": ca, "class_b": cb, "count": n, "examples": samples[str((f, ca, cb))]}
            for (f, ca, cb), n in changes.most_common()
        ],
        "review_changes": [
            {"field": f, "error_class": c, "flagged_by": side, "count": n}
            for (f, c, side), n in flag_changes.most_common()
        ],
    }


def format_report(report: Mapping[str, Any], model_a: str, model_b: str) -> str:
    lines = [
        f"metafix diff: A = {model_a}",
        f"              B = {model_b}",
        f"  events: A {report['events_a']}, B {report['events_b']}, changed {report['events_changed']}",
        "  value changes (field, class applied by A -> by B):",
    ]
    for c in report["value_changes"]:
        lines.append(f"    {c['field']:<16} {c['class_a']:>20} -> {c['class_b']:<20} {c['count']:>6}")
        for ex in c["examples"]:
            lines.append(f"        {ex['event_id']}: {ex['a']!r} -> {ex['b']!r}")
    if not report["value_changes"]:
        lines.append("    none")
    lines.append("  review flags that differ:")
    for c in report["review_changes"]:
        lines.append(f"    {c['field']:<16} {c['error_class']:<24} {c['flagged_by']:<7} {c['count']:>6}")
    if not report["review_changes"]:
        lines.append("    none")
    return "\n".join(lines)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="metafix diff", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="event log (as for metafix replay)")
    parser.add_argument("--model-a", required=True, help="the model in service")
    parser.add_argument("--model-b", required=True, help="the candidate")
    parser.add_argument("--json", default=None, help="also write the report as JSON here")
    parser.add_argument("--examples", type=int, default=3)
    args, beam_args = parser.parse_known_args(list(argv or []))
    outputs = []
    with tempfile.TemporaryDirectory(prefix="metafix-diff-") as tmp:
        for name, model_dir in (("a", args.model_a), ("b", args.model_b)):
            out = Path(tmp) / f"{name}.jsonl"
            code = replay(["--input", args.input, "--output", str(out), "--format", "jsonl",
                           "--model-dir", model_dir, "--progress", "off", *beam_args])
            if code:
                return code
            outputs.append(_read_jsonl(out))
    report = compare(outputs[0], outputs[1], args.examples)
    print(format_report(report, args.model_a, args.model_b))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0
