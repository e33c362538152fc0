"""The soak's verdict on memory: a least-squares slope over the samples after the warm-up."""

from __future__ import annotations

from bench.soak import Sample, rss_slope_mb_per_min


def samples(rss_at_minute) -> list[Sample]:
    return [Sample(t_s=m * 60, events_in=0, events_out=0, lag=0, rss_mb=rss_at_minute(m), cpu_pct=0.0,
                   cpu_s=0.0, rss_by_process_mb={}) for m in (x / 2 for x in range(61))]


def test_growth_during_the_warm_up_does_not_count() -> None:
    # 200 MB in the first five minutes (model, Beam, connections), flat afterwards.
    slope = rss_slope_mb_per_min(samples(lambda m: 1000 + 40 * min(m, 5)))

    assert abs(slope) < 1e-9


def test_a_steady_leak_shows_as_its_rate() -> None:
    slope = rss_slope_mb_per_min(samples(lambda m: 1200 + 2.5 * m + (3 if int(m * 2) % 2 else -3)))

    assert abs(slope - 2.5) < 0.05


def test_too_few_samples_after_the_warm_up_give_no_slope() -> None:
    assert rss_slope_mb_per_min(samples(lambda m: 1000)[:11]) is None
