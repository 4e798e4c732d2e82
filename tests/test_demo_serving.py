"""``cgm-ray demo --keep-serving`` as a user runs it: the simulated days end now, then the web
app is served with a caregiver's and a clinician's link until Ctrl-C (a child process, stopped
by its process group, Ray included)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import requests

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"a (caregiver|clinician) of (\d+) patients.*?: (http://127\.0\.0\.1:\d+)/\?token=(\S+)")
DASHBOARD = re.compile(r"Ray dashboard: (http://127\.0\.0\.1:\d+) \(sign in with the token in (\S+)")


def test_keep_serving_prints_live_links_and_stops_on_ctrl_c(tmp_path):
    env = {**os.environ, "API_SECRET": "demo-serving-secret-0123", "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [sys.executable, "-m", "cgm_ray.cli", "demo", "--patients", "12", "--days", "1",
         "--keep-serving", "--out", str(tmp_path / "demo")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        links, dashboard, lines = {}, None, []
        deadline = time.monotonic() + 300
        while (len(links) < 2 or dashboard is None) and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            lines.append(line)
            if m := LINK.search(line):
                links[m[1]] = (int(m[2]), m[3], unquote(m[4]))
            if m := DASHBOARD.search(line):
                dashboard = (m[1], Path(m[2]))
        assert len(links) == 2 and dashboard is not None, "".join(lines[-20:])
        n_followed, base, caregiver = links["caregiver"]
        n_clinic, _, clinician = links["clinician"]
        assert (n_followed, n_clinic) == (4, 12)
        assert requests.get(f"{base}/", timeout=30).status_code == 200
        status = requests.get(f"{base}/api/v1/status.json", timeout=30,
                              headers={"Authorization": f"Bearer {caregiver}"}).json()
        assert status["authorized"]["sub"].startswith("caregiver:")
        rows = requests.get(f"{base}/api/v2/cohorts/demo-clinic/summary", timeout=60,
                            headers={"Authorization": f"Bearer {clinician}"}).json()
        assert len(rows) == 12 and {r["source"] for r in rows} <= {"lake", "lake+hot"}
        assert all(23 <= r["hours"] <= 24 for r in rows)  # the lake's simulated day, ending now
        # the dashboard, signed in with the local token (named, never printed), shows the app
        dashboard_url, token_file = dashboard
        token = token_file.read_text().strip()
        assert token not in "".join(lines)
        apps = requests.get(f"{dashboard_url}/api/serve/applications/", timeout=30,
                            headers={"Authorization": f"Bearer {token}"})
        assert apps.status_code == 200, apps.text
        assert apps.json()["applications"]["ingest"]["status"] == "RUNNING"
        assert requests.get(f"{dashboard_url}/api/serve/applications/",
                            timeout=30).status_code in (401, 403)
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=120) == 0
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
