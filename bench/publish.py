"""Bench: PutMetricData calls per 10,000 data points, batched publisher against one call per metric.

Both publish the same datums to the local emulator in the same run; calls are counted with a botocore
event hook (what AWS would bill and throttle), and wall time is shown for information only.
Run: python bench/publish.py [--points 10000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time

from monitor_utils import config, local, publish
from monitor_utils.aws import connect


def datums(n: int) -> list[dict]:
    """n datums shaped like the metrics stage's: 9 metrics per window per endpoint, daily windows."""
    t0 = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=13)
    names = ["Count", "MSE", "RMSE", "MAE", "R2", "MedianAE", "Bias", "LabelCoverage", "CapturedInvocations"]
    return [publish.datum(names[i % len(names)], float(i % 97) / 7, t0 + dt.timedelta(minutes=i // len(names)),
                          {"EndpointName": "bench", "VariantName": "AllTraffic"}) for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--points", type=int, default=10_000)
    args = ap.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = local.start()
    try:
        aws = connect(config.validate({}), server.url)
        calls = {"n": 0}
        aws.client("cloudwatch").meta.events.register(
            "before-call.cloudwatch.PutMetricData", lambda **kw: calls.__setitem__("n", calls["n"] + 1))
        data = datums(args.points)
        t = time.perf_counter()
        for d in data:  # the seed's way: one put_metric_data per metric value
            aws.client("cloudwatch").put_metric_data(Namespace="BenchSeed", MetricData=[d])
        seed_calls, seed_s = calls["n"], time.perf_counter() - t
        calls["n"] = 0
        t = time.perf_counter()
        stats = publish.publish(aws, "BenchBatched", data)
        ours_calls, ours_s = calls["n"], time.perf_counter() - t
        assert stats.calls == ours_calls and stats.datums == len(data)
        per10k = 10_000 / args.points
        print(f"data points: {args.points}")
        print(f"one call per metric: {seed_calls * per10k:.0f} calls per 10,000 points ({seed_s:.1f} s locally)")
        print(f"batched publisher:  {ours_calls * per10k:.0f} calls per 10,000 points ({ours_s:.1f} s locally)")
        print(f"ratio: {seed_calls / max(ours_calls, 1):.0f}x fewer PutMetricData calls")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
