"""``cgm-ray monitor``: Debian's Prometheus over a local Ray, the way an operator watches a run.

The recording rules are checked by Prometheus's own rule tester (``promtool test rules``). The
end-to-end test runs ``cgm-ray monitor -- cgm-ray serve``, joins a load test to that Ray, looks
at the Ray dashboard in Chromium while it runs, reads the series back from Prometheus's HTTP API,
and stops it all with one Ctrl-C: no Prometheus and no Ray process may outlive it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from cgm_ray.cli import main
from cgm_ray.monitoring.prometheus_config import RECORDING_RULES, PrometheusSettings, write_config
from tests.browser import chromium, needs_chromium

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
pytestmark = pytest.mark.skipif(not (PROMETHEUS and PROMTOOL),
                                reason="Debian's prometheus is not installed (make monitor-deps)")

# Prometheus's rule tester: 15 s between input samples, each rule checked at 5 minutes.
RULE_TESTS = """
rule_files: [{rules}]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      - series: 'ray_cgm_fleet_readings_delivered_total{{shard="0"}}'
        values: '0+1500x40'  # 100 readings/s
      - series: 'ray_cgm_fleet_readings_delivered_total{{shard="1"}}'
        values: '0+750x40'   # 50 readings/s
      - series: 'ray_cgm_fleet_sim_lag_min{{shard="0"}}'
        values: '0x40'
      - series: 'ray_cgm_fleet_sim_lag_min{{shard="1"}}'
        values: '15x40'
      - series: 'ray_cgm_alerts_fired_total{{partition="0",type="urgent_low"}}'
        values: '0+0.5x40'   # 2 a minute
      - series: 'ray_cgm_alerts_fired_total{{partition="1",type="urgent_low"}}'
        values: '0+0.25x40'  # 1 a minute
      - series: 'ray_cgm_ingest_request_latency_ms_bucket{{route="write",le="10.0"}}'
        values: '0+50x40'
      - series: 'ray_cgm_ingest_request_latency_ms_bucket{{route="write",le="20.0"}}'
        values: '0+100x40'
      - series: 'ray_cgm_ingest_request_latency_ms_bucket{{route="write",le="+Inf"}}'
        values: '0+100x40'
      - series: 'ray_cgm_etl_readings_loaded_total'
        values: '0+3000x40'  # 200 rows/s
    promql_expr_test:
      - expr: cgm:fleet_readings_delivered:rate1m
        eval_time: 5m
        exp_samples: [{{labels: 'cgm:fleet_readings_delivered:rate1m', value: 150}}]
      - expr: cgm:fleet_sim_lag_min:max
        eval_time: 5m
        exp_samples: [{{labels: 'cgm:fleet_sim_lag_min:max', value: 15}}]
      - expr: type:cgm_alerts_fired:per_min
        eval_time: 5m
        exp_samples: [{{labels: 'type:cgm_alerts_fired:per_min{{type="urgent_low"}}', value: 3}}]
      - expr: cgm:ingest_request_latency_ms:p50_1m  # the 50th of 100 is the top of (0, 10]
        eval_time: 5m
        exp_samples: [{{labels: 'cgm:ingest_request_latency_ms:p50_1m', value: 10}}]
      - expr: cgm:ingest_request_latency_ms:p99_1m  # 49 of 50 into (10, 20]
        eval_time: 5m
        exp_samples: [{{labels: 'cgm:ingest_request_latency_ms:p99_1m', value: 19.8}}]
      - expr: cgm:etl_readings_loaded:rate1m
        eval_time: 5m
        exp_samples: [{{labels: 'cgm:etl_readings_loaded:rate1m', value: 200}}]
"""


def test_the_recording_rules_compute_the_headline_series(tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text(RECORDING_RULES.read_text())
    tests = tmp_path / "rules_test.yml"
    tests.write_text(RULE_TESTS.format(rules=rules))
    run = subprocess.run([PROMTOOL, "test", "rules", str(tests)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_prometheus_accepts_the_configuration_written(tmp_path):
    settings = PrometheusSettings(port=9090, data_dir=tmp_path / "monitor",
                                  targets_file=tmp_path / "ray" / "targets.json")
    write_config(settings)
    run = subprocess.run([PROMTOOL, "check", "config", str(settings.config_file)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS: 12 rules found" in run.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_port_in_use_is_named(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        assert main(["monitor", "--port", str(port), "--dir", str(tmp_path)]) == 2
    assert f"--port: 127.0.0.1:{port} is in use" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--port", "70000"], "--port: 70000 is no TCP port (1-65535)"),
    (["--scrape-interval", "0"], "--scrape-interval: at least 1 second"),
    (["--dir", "/proc/monitor"], "--dir: cannot write /proc/monitor"),
])
def test_bad_options_are_named(tmp_path, capsys, args, message):
    assert main(["monitor", "--dir", str(tmp_path), "--port", str(_free_port()), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_command_that_cannot_run_is_named_and_prometheus_stops(tmp_path, capsys):
    port = _free_port()
    assert main(["monitor", "--port", str(port), "--dir", str(tmp_path), "--",
                 str(tmp_path / "no-such-command")]) == 2
    assert "command: cannot run" in capsys.readouterr().err
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/-/ready", timeout=5)


def test_without_prometheus_the_error_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["monitor", "--port", str(_free_port()), "--dir", str(tmp_path)]) == 2
    assert "prometheus: not found on PATH; `make monitor-deps`" in capsys.readouterr().err


class _Lines:
    """A child's output lines, read in a thread so its pipe never fills."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(iter(stream.readline, "")),
                         daemon=True).start()

    def wait_for(self, pattern: str, timeout_s: float = 120) -> re.Match:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := re.search(pattern, line):
                    return m
            time.sleep(0.2)
        raise AssertionError(f"no line matching {pattern!r} in:\n" + "".join(self.lines[-30:]))


def _series(prometheus: str, query: str) -> list[dict]:
    answer = requests.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["result"]


def _wait_series(prometheus: str, query: str, timeout_s: float = 60,
                 positive: bool = False) -> list[dict]:
    """The series of ``query`` once it has some (with ``positive``, some above zero: Ray
    exports a worker's metrics every few seconds, so a rate is 0 until the second export)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = _series(prometheus, query)
        if found and (not positive or any(float(s["value"][1]) > 0 for s in found)):
            return found
        time.sleep(1)
    raise AssertionError(f"Prometheus has no {'positive ' if positive else ''}samples of {query}")


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _dashboard_shows(driver, url: str, route: str, *texts: str, timeout_s: float = 60) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/#/{route}")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = driver.find_element(By.TAG_NAME, "body").text
        if all(t in body for t in texts):
            return
        time.sleep(1)
    raise AssertionError(f"the dashboard's {route} page lacks {texts}:\n{body[:2000]}")


def _sign_in(driver, url: str, token: str) -> None:
    """Sign in the way a person does: paste the token into the dashboard's dialog."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    box = WebDriverWait(driver, 30).until(ec.presence_of_element_located(
        (By.CSS_SELECTOR, "input[placeholder='Enter your authentication token']")))
    box.send_keys(token)
    driver.find_element(By.XPATH, "//button[normalize-space()='Submit']").click()
    WebDriverWait(driver, 30).until(lambda d: d.get_cookie("ray-authentication-token"))


@needs_chromium
def test_monitor_watches_serve_and_a_load_test_then_stops_with_them(tmp_path):
    ray_tmp = tempfile.mkdtemp(prefix="cgmr", dir="/tmp")  # Ray's socket paths must stay short
    prometheus_port, api_port, dashboard_port = _free_port(), _free_port(), _free_port()
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "API_SECRET": "monitor-test-secret-0123",
           "PYTHONUNBUFFERED": "1"}
    cli = [sys.executable, "-m", "cgm_ray.cli"]
    monitor = subprocess.Popen(
        [*cli, "monitor", "--port", str(prometheus_port), "--dir", str(tmp_path / "monitor"),
         "--scrape-interval", "2", "--", *cli, "serve", "--port", str(api_port),
         "--dashboard-port", str(dashboard_port), "--data-dir", str(tmp_path / "ingest"),
         "--landing-dir", str(tmp_path / "landing"), "--lake", str(tmp_path / "lake"),
         "--documents-landing-dir", str(tmp_path / "documents")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started: dict[int, psutil.Process] = {}
    try:
        out = _Lines(monitor.stdout)
        prometheus = out.wait_for(r"Prometheus: (http://127\.0\.0\.1:\d+) \(pid (\d+)")[1]
        api = out.wait_for(r"cgm-ray ingest listening on (http://127\.0\.0\.1:\d+)")[1]
        dashboard, sign_in = out.wait_for(r"Ray dashboard: (http://127\.0\.0\.1:\d+) \((.*)\)$").groups()
        join = out.wait_for(r"join it: (RAY_AUTH_MODE=token )?cgm-ray loadtest --address (\S+)")
        started = {p.pid: p for p in psutil.Process(monitor.pid).children(recursive=True)}
        assert any(p.name() == "prometheus" for p in started.values())
        assert any(p.name() == "raylet" for p in started.values())

        # a load test joins serve's Ray and posts to its API
        loadtest = subprocess.Popen(
            [*cli, "loadtest", "--address", join[2], "--target", api, "--sensors", "200",
             "--speedup", "300", "--duration", "40", "--json", "--quiet",
             "--report", str(tmp_path / "report")],
            cwd=ROOT, env={**env, "RAY_AUTH_MODE": "token"} if join[1] else env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            with chromium() as driver:
                if token_file := re.search(r"the token in (\S+)", sign_in):
                    _sign_in(driver, dashboard, Path(token_file[1]).read_text().strip())
                _dashboard_shows(driver, dashboard, "serve", "ingest", "RUNNING", "Ingress")
                _dashboard_shows(driver, dashboard, "actors", "SensorShard", "ALIVE")
            delivered = _wait_series(prometheus, "ray_cgm_fleet_readings_delivered_total")
            assert {s["metric"]["shard"] for s in delivered} == {"0", "1"}
            buckets = _wait_series(prometheus, 'ray_cgm_ingest_request_latency_ms_bucket{route="write"}')
            assert {s["metric"]["le"] for s in buckets} >= {"10.0", "+Inf"}
            # the recording rules' headline series, from the live run
            p99 = _wait_series(prometheus, "cgm:ingest_request_latency_ms:p99_1m", positive=True)
            assert float(p99[0]["value"][1]) < 5000
            _wait_series(prometheus, "cgm:fleet_readings_delivered:rate1m", positive=True)
            _wait_series(prometheus, "cgm:ingest_readings_stored:rate1m", positive=True)
            report, err = loadtest.communicate(timeout=180)
        finally:
            if loadtest.poll() is None:
                loadtest.kill()
                loadtest.wait()
        assert loadtest.returncode == 0, err[-3000:]
        result = json.loads(report)
        assert result["readings_acked"] > 0 and result["readings_failed"] == 0
        assert "<img" in Path(result["report_html"]).read_text()
        # the dashboard charts from this Prometheus: monitor pointed the watched command at it
        token = {"Authorization": f"Bearer {Path(token_file[1]).read_text().strip()}"} if token_file else {}
        health = requests.get(f"{dashboard}/api/prometheus_health", headers=token, timeout=30)
        assert health.json()["result"] is True, health.text

        started.update({p.pid: p for p in psutil.Process(monitor.pid).children(recursive=True)})
        monitor.send_signal(signal.SIGINT)  # Ctrl-C
        assert monitor.wait(timeout=120) == 0, "".join(out.lines[-30:])
        _, alive = psutil.wait_procs(list(started.values()), timeout=30)
        assert not [p for p in alive if _running(p)], alive
    finally:
        if monitor.poll() is None:
            monitor.kill()
        for p in started.values():
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        monitor.wait()
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_alone_it_serves_until_ctrl_c_and_leaves_nothing_behind(tmp_path):
    monitor = subprocess.Popen(
        [sys.executable, "-m", "cgm_ray.cli", "monitor", "--port", str(_free_port()),
         "--dir", str(tmp_path), "--ray-dir", str(tmp_path / "no-ray-yet")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out = _Lines(monitor.stdout)
        url, pid = out.wait_for(r"Prometheus: (http://127\.0\.0\.1:\d+) \(pid (\d+)").groups()
        out.wait_for(r"start Ray with RAY_PROMETHEUS_HOST=http://127\.0\.0\.1:\d+; Ctrl-C stops")
        assert requests.get(f"{url}/-/ready", timeout=10).status_code == 200
        assert _series(url, "up") == []  # no Ray yet: nothing to scrape, and no error
        prometheus = psutil.Process(int(pid))
        monitor.send_signal(signal.SIGINT)
        assert monitor.wait(timeout=60) == 0
        assert not _running(prometheus) or prometheus.wait(timeout=10) is not None
        assert (tmp_path / "tsdb").is_dir() and (tmp_path / "prometheus.log").exists()
    finally:
        if monitor.poll() is None:
            monitor.kill()
            monitor.wait()
