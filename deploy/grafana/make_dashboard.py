#!/usr/bin/env python3
"""Writes dashboards/clearair.json, the Grafana dashboard of the mesh, from the panel list below.

Kept as a program so the panels stay consistent (one row per signal, one series per service)
and reviewable; re-run it after changing a panel:  python3 deploy/grafana/make_dashboard.py
"""

import json
from pathlib import Path

# (title, unit, [(PromQL, legend)], description)
PANELS = [
    ("Throughput (requests/s)", "reqps",
     [('sum by (service) (rate(clearair_requests_total[1m]))', "{{service}}")],
     "Completed gRPC requests per second, every status code."),
    ("Errors (requests/s, non-OK)", "reqps",
     [('sum by (service, code) (rate(clearair_requests_total{code!="OK"}[1m]))',
       "{{service}} {{code}}")],
     "Requests that ended with a non-OK status; RESOURCE_EXHAUSTED is load shedding."),
    ("Latency p50", "s",
     [('histogram_quantile(0.5, sum by (service, le) (rate(clearair_request_duration_seconds_bucket[1m])))',
       "{{service}}")],
     "Median time from request to the end of the response."),
    ("Latency p95", "s",
     [('histogram_quantile(0.95, sum by (service, le) (rate(clearair_request_duration_seconds_bucket[1m])))',
       "{{service}}")], ""),
    ("Latency p99", "s",
     [('histogram_quantile(0.99, sum by (service, le) (rate(clearair_request_duration_seconds_bucket[1m])))',
       "{{service}}")], ""),
    ("Model time p95", "s",
     [('histogram_quantile(0.95, sum by (service, le) (rate(clearair_model_duration_seconds_bucket[1m])))',
       "{{service}}")],
     "Time spent in the model itself, without queueing and transport."),
    ("Saturation", "percentunit",
     [('(sum by (service) (rate(clearair_slot_busy_seconds_total[1m]))'
       ' + sum by (service) (rate(clearair_queue_wait_seconds_total[1m])))'
       ' / sum by (service) (clearair_capacity)', "{{service}}")],
     "(In flight + queued) / capacity over a minute: the autoscaling signal. 100% is every "
     "slot busy with nothing waiting; above it requests queue."),
    ("Queue depth", "short",
     [('sum by (service) (clearair_queue_depth)', "{{service}}")],
     "Requests waiting for a processing slot now."),
    ("In flight", "short",
     [('sum by (service) (clearair_in_flight)', "{{service}}")],
     "Requests being processed now."),
    ("Mean batch size", "short",
     [('sum by (service) (rate(clearair_batch_size_sum[1m])) / sum by (service) (rate(clearair_batch_size_count[1m]))',
       "{{service}}")],
     "Images per model invocation."),
    ("Prior fallbacks (per s)", "short",
     [('sum by (prior) (rate(clearair_prior_fallbacks_total[1m]))', "{{prior}}")],
     "Priors replaced by a neutral prior because their service failed."),
]


def panel(index: int, title: str, unit: str, targets, description: str) -> dict:
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "prometheus"},
        "gridPos": {"h": 8, "w": 12, "x": (index % 2) * 12, "y": (index // 2) * 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom"},
                    "tooltip": {"mode": "multi"}},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend,
             "datasource": {"type": "prometheus", "uid": "prometheus"}}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def main() -> None:
    dashboard = {
        "uid": "clearair-mesh",
        "title": "ClearAIR mesh",
        "tags": ["clearair"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "panels": [panel(i, *p) for i, p in enumerate(PANELS)],
    }
    out = Path(__file__).parent / "dashboards" / "clearair.json"
    out.write_text(json.dumps(dashboard, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
