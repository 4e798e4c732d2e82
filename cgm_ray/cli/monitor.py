"""``cgm-ray monitor``: Prometheus on this machine, scraping the local Ray, until Ctrl-C or until
the command it runs (``cgm-ray monitor -- cgm-ray serve``) stops."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from cgm_ray.errors import ConfigError
from cgm_ray.monitoring.prometheus_config import (
    PrometheusSettings,
    ray_temp_dir,
    service_discovery_file,
)
from cgm_ray.monitoring.prometheus_process import PrometheusError, PrometheusProcess

# Read by the Ray dashboard when it starts: its Metrics view then charts from this Prometheus.
PROMETHEUS_HOST_ENV = "RAY_PROMETHEUS_HOST"


def _check_port_free(host: str, port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            raise ConfigError("--port", f"{host}:{port} is in use; choose another port") from None


def cmd_monitor(args: argparse.Namespace) -> int:
    """Run Prometheus on 127.0.0.1, scraping every node of the local Ray (through the service-
    discovery file the Ray dashboard writes), with cgm-ray's recording rules; data in --dir."""
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not 1 <= args.port <= 65535:
        raise ConfigError("--port", f"{args.port} is no TCP port (1-65535)")
    if args.scrape_interval < 1:
        raise ConfigError("--scrape-interval", "at least 1 second")
    settings = PrometheusSettings(
        port=args.port, data_dir=Path(args.dir),
        targets_file=service_discovery_file(Path(args.ray_dir) if args.ray_dir else ray_temp_dir()),
        scrape_interval_s=args.scrape_interval)
    _check_port_free(settings.host, settings.port)
    with PrometheusProcess(settings) as prometheus:
        print(f"Prometheus: {settings.url} (pid {prometheus.pid}; scraping the Ray nodes in "
              f"{settings.targets_file}; data in {settings.data_dir})", file=sys.stderr, flush=True)
        if command:
            return _run_watched(command, settings.url, prometheus)
        print(f"For the Ray dashboard's charts, start Ray with {PROMETHEUS_HOST_ENV}="
              f"{settings.url}; Ctrl-C stops Prometheus", file=sys.stderr, flush=True)
        return _wait_interrupted(prometheus)


def _run_watched(command: list[str], url: str, prometheus: PrometheusProcess) -> int:
    """Run ``command`` with the dashboard pointed at this Prometheus; its exit code.

    The command runs in a session of its own and gets Ctrl-C and SIGTERM from here, once, so
    it stops first and Prometheus records the end of its run before being stopped."""
    env = {**os.environ, PROMETHEUS_HOST_ENV: url}
    try:
        child = subprocess.Popen(command, env=env, start_new_session=True)
    except OSError as exc:
        raise ConfigError("command", f"cannot run {command[0]!r}: {exc.strerror}") from None
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, _frame: child.send_signal(received))
    code = child.wait()
    if not prometheus.running():
        print("cgm-ray monitor: Prometheus stopped during the run; its log: "
              f"{prometheus.log_file}", file=sys.stderr)
    return code


def _wait_interrupted(prometheus: PrometheusProcess) -> int:
    """Until Ctrl-C or SIGTERM (0), or until Prometheus stops by itself (an error)."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(1.0):
            if not prometheus.running():
                raise PrometheusError(f"prometheus stopped; its log: {prometheus.log_file}")
    except KeyboardInterrupt:
        pass
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``monitor`` on the ``cgm-ray`` parser."""
    monitor = sub.add_parser("monitor", help="run Prometheus over the local Ray's metrics",
                             description=cmd_monitor.__doc__)
    monitor.add_argument("--port", type=int, default=9090, help="Prometheus's port on 127.0.0.1")
    monitor.add_argument("--dir", default="out/monitor",
                         help="Prometheus's configuration, rules, log and time series")
    monitor.add_argument("--ray-dir", help="the local Ray's temporary folder (default: Ray's "
                         "own, $RAY_TMPDIR/ray or /tmp/ray)")
    monitor.add_argument("--scrape-interval", type=int, default=5, metavar="S",
                         help="seconds between scrapes and rule evaluations")
    monitor.add_argument("command", nargs=argparse.REMAINDER,
                         help="-- COMMAND...: run it with the Ray dashboard's charts from this "
                         "Prometheus, and stop when it stops")
    monitor.set_defaults(func=cmd_monitor)


__all__ = ["add_commands"]
