"""The summary a job prints when it ends: records in and out, dead letters, corrections per class."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, TextIO

from apache_beam.metrics.metric import MetricsFilter

from streaming import logs
from streaming.composites import METRICS_NAMESPACE
from streaming.deadlines import NoAnswer, call_within


def collect(result: Any, timeout_s: float | None = None) -> dict[str, Any]:
    """Counters and distributions of the metafix namespace, by name (committed values, else attempted).

    Empty when the runner cannot report them, or gives no answer within `timeout_s` (a
    stopping stream's bound). Without it the call waits: a batch command's exit code
    depends on its counts (archive compact's failed partitions), which a bound would lose.
    """

    def query_metrics() -> Any:
        return result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))

    try:
        query = query_metrics() if timeout_s is None else call_within(timeout_s, query_metrics)
    except NoAnswer as e:
        logging.getLogger("metafix").warning("metafix: the runner gave %s to the metrics request", e)
        return {}
    except Exception:  # noqa: BLE001 - some runners cannot report metrics of a cancelled job
        return {}
    values: dict[str, Any] = {}
    for kind in ("counters", "distributions"):
        for m in query.get(kind, []):
            value = m.committed if m.committed is not None else m.attempted
            if kind == "counters":
                values[m.key.metric.name] = values.get(m.key.metric.name, 0) + (value or 0)
            elif value is not None and value.count:
                values[m.key.metric.name] = {"count": value.count, "mean": value.mean, "min": value.min,
                                             "max": value.max}
    return values


def format_summary(values: dict[str, Any]) -> str:
    if not values:
        return "metafix: no metrics were reported by the runner"
    lines = ["metafix summary (metrics as last reported by the runner)"]
    for name in ("records_in", "records_out", "dead_letters", "inference_errors"):
        lines.append(f"  {name:<28} {values.get(name, 0):>10}")
    for name in ("inference_batch_size", "inference_latency_ms"):
        d = values.get(name)
        if d:
            lines.append(f"  {name:<28} mean {d['mean']:.1f}  min {d['min']}  max {d['max']}  (n={d['count']})")
    for prefix in ("detected.", "corrected.", "flagged.", "dead_letters."):
        rows = sorted((k, v) for k, v in values.items() if k.startswith(prefix) and not isinstance(v, dict))
        if rows:
            lines.append(f"  {prefix.rstrip('.')}:")
            lines += [f"    {k[len(prefix):]:<40} {v:>8}" for k, v in rows]
    return "\n".join(lines)


def print_summary(result: Any, out: TextIO = sys.stdout, metrics_file: str | None = None,
                  timeout_s: float | None = None) -> dict[str, Any]:
    values = collect(result, timeout_s)
    if logs.active().format == "json":
        # A log shipper reads one JSON object per line: the summary is one, its values a field.
        logging.getLogger("metafix").info("metafix summary", extra={"summary": values})
    else:
        print(format_summary(values), file=out, flush=True)
    if metrics_file:
        with open(metrics_file, "w", encoding="utf-8") as f:
            json.dump(values, f, indent=2, sort_keys=True)
    return values
