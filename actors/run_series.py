"""A fleet run over time, and its report: readings/s, failures, delivery latency, lag and alerts
as the run went, drawn in one PNG and an HTML page next to it.

``run_fleet`` samples the fleet's status each time it looks (every second, or five in a log);
the latency percentiles of a sample are those of the shards' newest deliveries (each shard
keeps its last ``LATENCY_SAMPLES``), so they follow the run rather than its average.
Figures use ``matplotlib.figure.Figure`` directly (Agg canvas, no pyplot state).
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from actors.fleet import FleetStatus


@dataclass
class RunSeries:
    """Samples of one run: wall seconds since the clock started, and the counters then."""

    wall_s: list[float] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    lag_min: list[int] = field(default_factory=list)
    latency_p50_ms: list[float] = field(default_factory=list)
    latency_p99_ms: list[float] = field(default_factory=list)
    alerts: list[int] = field(default_factory=list)  # fired by the ingest since the start

    def sample(self, status: FleetStatus, alerts: int = 0) -> None:
        """Add the fleet's status now."""
        latencies = np.concatenate([np.asarray(s.latency_ms, float) for s in status.shards]
                                   or [[]])
        p50, p99 = (np.percentile(latencies, [50, 99]) if len(latencies) else (np.nan, np.nan))
        self.wall_s.append(round(status.wall_s, 3))
        self.acked.append(status.acked)
        self.failed.append(status.failed)
        self.lag_min.append(status.lag_min)
        self.latency_p50_ms.append(float(p50))
        self.latency_p99_ms.append(float(p99))
        self.alerts.append(alerts)

    def rates(self, counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(midpoint seconds, per-second rate) between consecutive samples of ``counts``."""
        t, n = np.asarray(self.wall_s, float), np.asarray(counts, float)
        dt = np.diff(t)
        ok = dt > 0
        return ((t[1:] + t[:-1])[ok] / 2, (np.diff(n)[ok] / dt[ok]))


def draw(series: RunSeries, title: str) -> Figure:
    """Four panels over wall-clock seconds: readings/s acknowledged and failed, delivery
    latency p50/p99, simulated lag, and alerts fired."""
    fig = Figure(figsize=(10, 7.5), layout="constrained")
    fig.suptitle(title)
    axes = fig.subplots(2, 2, sharex=True)
    t, acked = series.rates(series.acked)
    _, failed = series.rates(series.failed)
    axes[0, 0].plot(t, acked, label="acknowledged")
    axes[0, 0].plot(t, failed, label="failed", color="#b00020")
    axes[0, 0].set(title="Readings per second", ylabel="readings/s")
    axes[0, 0].legend(loc="lower right")
    axes[0, 1].plot(series.wall_s, series.latency_p50_ms, label="p50")
    axes[0, 1].plot(series.wall_s, series.latency_p99_ms, label="p99")
    axes[0, 1].set(title="Window delivery latency (newest deliveries)", ylabel="ms")
    axes[0, 1].legend(loc="upper right")
    axes[1, 0].plot(series.wall_s, series.lag_min, color="#8a5a00")
    axes[1, 0].set(title="Simulated lag behind the clock", ylabel="minutes", xlabel="wall seconds")
    axes[1, 1].plot(series.wall_s, series.alerts, color="#5c2d91")
    axes[1, 1].set(title="Alerts fired by the ingest", ylabel="alerts", xlabel="wall seconds")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    return fig


def write_report(series: RunSeries, summary: dict, out_dir: str | Path, title: str) -> Path:
    """``report.png``, ``report.html`` (the PNG embedded, the summary as a table) and
    ``series.json`` in ``out_dir``; the HTML's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = out / "report.png"
    draw(series, title).savefig(png, dpi=100)
    (out / "series.json").write_text(json.dumps(asdict(series)))
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v))}</td></tr>"
                   for k, v in summary.items())
    data = base64.b64encode(png.read_bytes()).decode()
    page = out / "report.html"
    page.write_text(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f'</title><style>body{{font-family:system-ui,sans-serif;margin:1.5rem}}th{{text-align:left;'
        f'padding-right:1rem}}</style></head><body><h1>{html.escape(title)}</h1>'
        f'<img alt="Readings per second, latency, lag and alerts over the run" '
        f'src="data:image/png;base64,{data}" width="1000"><h2>Summary</h2><table>{rows}</table>'
        f'<p>The samples are in series.json beside this page.</p></body></html>', encoding="utf-8")
    return page
