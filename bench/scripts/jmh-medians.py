#!/usr/bin/env python3
"""Median of the measurement iterations of a JMH JSON result (-rf json), per benchmark and params.

JMH prints mean +- error; on a noisy machine one slow iteration drags the mean, so RESULTS.md
quotes medians. Prints the primary score and every secondary one (packets, gc.alloc.rate.norm...).
Usage: jmh-medians.py result.json [more.json ...]
"""
import json
import statistics
import sys


def raw(result):
    return [v for fork in result.get("rawData", []) for v in fork]


for path in sys.argv[1:]:
    for run in json.load(open(path)):
        params = ",".join(f"{k}={v}" for k, v in (run.get("params") or {}).items())
        name = run["benchmark"].rsplit(".", 1)[-1]
        rows = [("", run["primaryMetric"])] + sorted(run.get("secondaryMetrics", {}).items())
        for metric, result in rows:
            values = raw(result)
            if not values:
                continue
            label = f"{name}{':' + metric if metric else ''} [{params}]"
            print(f"{label:55s} median {statistics.median(values):>16,.3f}  "
                  f"min {min(values):>16,.3f}  max {max(values):>16,.3f}  {result['scoreUnit']}")
