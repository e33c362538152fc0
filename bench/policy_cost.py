"""Per-record CPU of the decision policy (``correct_track``) on real records.

    python -m bench.policy_cost [--n 10000] [--tracks tracks.json]

Scores come from the rules baseline (``transforms.rules.detect``), so no model
is loaded and the timing is the policy's own. With ``--tracks`` it reads the
tracks (a JSON list of ``[source, track]``) instead of the real data, so the
same records can be timed against another checkout's policy (``--dump``
writes that file). Prints µs per record (best of three passes).
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from collections.abc import Sequence

from transforms import rules
from transforms.policy import Thresholds, correct_track


def _real_tracks(n: int) -> list[tuple[str, dict]]:
    from model.training import realdata

    records = realdata.split_records(realdata.load_all())["test"]
    # Every data set in proportion, in a fixed order.
    step = max(len(records) // n, 1)
    return [(r.source, r.track) for r in records[::step][:n]]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--tracks", default=None)
    parser.add_argument("--dump", default=None)
    parser.add_argument("--profile", default=None, help="a profile directory (DIR/LATEST)")
    args = parser.parse_args(argv)
    if args.tracks:
        with open(args.tracks, encoding="utf-8") as f:
            tracks = [(s, t) for s, t in json.load(f)]
    else:
        tracks = _real_tracks(args.n)
    if args.dump:
        with open(args.dump, "w", encoding="utf-8") as f:
            json.dump(tracks, f)
    scores = [rules.detect(t) for _, t in tracks]
    extra: dict = {}
    # An older checkout's correct_track has no profile parameter: time it without.
    takes_profile = "profile" in inspect.signature(correct_track).parameters
    if args.profile and takes_profile:
        from model.profilestore import load_latest

        extra["profile"] = load_latest(args.profile)
    thresholds = Thresholds()
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for (source, track), score in zip(tracks, scores, strict=True):
            if takes_profile:
                correct_track(track, score, thresholds=thresholds, model_version="m", source=source, **extra)
            else:
                correct_track(track, score, thresholds=thresholds, model_version="m")
        best = min(best, time.process_time() - started)
    print(f"correct_track: {len(tracks)} records, {best / len(tracks) * 1e6:.1f} µs/record "
          f"(profile: {'yes' if extra else 'no'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
