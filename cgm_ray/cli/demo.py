"""``cgm-ray demo``: fleet -> ingest API -> lake -> cohort -> report, on one Ray, in minutes.

The same pipeline runs on a multi-node cluster (``address``), which the cluster test uses.
Every reading the ingest acknowledged must be in the lake afterwards: the demo checks it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from cgm_ray.cli.ray_runtime import DASHBOARD_PORT, add_dashboard_option, init_ray, sign_in_hint
from cgm_ray.client import admin_call
from cgm_ray.config import Strict, read_mapping, validate
from cgm_ray.errors import CgmRayError
from cgm_ray.lake.store import Lake

if TYPE_CHECKING:
    import pyarrow as pa

    from actors.run import FleetReport
    from cgm_ray.lake.etl import EtlReport

SECRET_ENV = "API_SECRET"
WEB_FOLLOWED = 4  # patients in the web app link's caregiver token
# Patients registered to the clinician's cohort when serving: a clinic's panel. Each sensor
# registration rewrites the partition's registry file, so not all 2,000.
WEB_CLINIC, CLINIC_COHORT = 50, "demo-clinic"


class IngestSettings(Strict):
    partitions: int = Field(2, ge=1, le=64)
    proxy: Literal["python", "haproxy"] = "python"


class FleetSettings(Strict):
    shards: int | Literal["auto"] = "auto"
    tick_min: int = Field(60, ge=5, le=1440)
    batch_size: int = Field(10_000, ge=100, le=50_000)


class LakeSettings(Strict):
    buckets: int = Field(8, ge=1, le=4096)


class CohortSettings(Strict):
    group_by: tuple[str, ...] = ("age_group",)


class DemoConfig(Strict):
    """``configs/demo.yaml``."""

    scenario: str = Field("configs/scenarios/demo.yaml", description="scenario file")
    out: str = Field("out/demo", description="everything the demo writes (recreated each run)")
    ingest: IngestSettings = IngestSettings()
    fleet: FleetSettings = FleetSettings()
    lake: LakeSettings = LakeSettings()
    cohort: CohortSettings = CohortSettings()


def load_demo_config(path: str) -> DemoConfig:
    return validate(DemoConfig, read_mapping(path))


class PipelineMismatch(CgmRayError):
    """The lake does not hold exactly the readings the ingest acknowledged."""


@dataclass
class DemoSummary:
    """What one demo run did; ``summary.json`` and ``--json`` hold it with these keys."""

    patients: int
    shards: int
    nodes: int
    simulated_min: int
    readings_sent: int
    readings_acked: int
    lake_rows: int
    acked_equals_lake: bool
    alerts_by_type: dict[str, int]
    cohort: dict
    cohort_dir: str
    lake: str
    report: dict[str, str]
    api_url: str
    dashboard_url: str | None
    seconds: dict[str, float]
    summary_file: str
    followed: list[str]  # the patients the web app's caregiver link follows


class StageClock:
    """Seconds spent in each named stage, for the summary's last line."""

    def __init__(self) -> None:
        self.started = self._last = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._last, 2)
        self._last = now

    def total(self) -> dict[str, float]:
        return {**self.seconds, "total": round(time.perf_counter() - self.started, 2)}


def start_ingest_api(config: DemoConfig, out: Path, address: str | None,
                     dashboard_port: int | None = DASHBOARD_PORT) -> tuple[str, str | None]:
    """Ray (with its dashboard on ``dashboard_port`` unless None) and the ingest API on a free port: (API URL,
    dashboard URL)."""
    from serve_apps.local import free_port, start_ingest, use_proxy

    use_proxy(config.ingest.proxy)
    dashboard_url = init_ray(address, dashboard_port)
    api = start_ingest("127.0.0.1", free_port(), {
        "partitions": config.ingest.partitions, "data_dir": str(out / "ingest"),
        "landing_dir": str(out / "lake" / "landing" / "ingest"),
        "documents_landing_dir": str(out / "lake" / "landing" / "documents"),
        "lake_dir": str(out / "lake"),
        # the fleet's clock runs ahead of the wall's: signal loss and device rates by its clock
        "signal_loss_clock": "readings", "patient_rate_limit_per_s": 1e6})
    return api, dashboard_url


def stream_fleet(config: DemoConfig, scenario: dict, api: str, lake_dir: Path) -> FleetReport:
    """Every virtual patient streams into the ingest API; every reading must be acknowledged."""
    from actors.config import parse_fleet_config
    from actors.run import ProgressLine, run_fleet

    fleet = run_fleet(parse_fleet_config({
        "scenario": scenario, "shards": config.fleet.shards, "speedup": "max",
        "tick_min": config.fleet.tick_min,
        "sink": {"kind": "http", "url": api, "secret_env": SECRET_ENV,
                 "batch_size": config.fleet.batch_size},
        "attributes_dir": str(lake_dir / "landing" / "patients")}), ProgressLine())
    if fleet.state != "finished" or fleet.readings_failed:
        raise PipelineMismatch(f"fleet ended {fleet.state} with {fleet.readings_failed} failed "
                               f"readings: {fleet.error}")
    return fleet


def drain_ingest(api: str) -> Counter[str]:
    """Land the ingest's open log segments, then stop Serve; return the alerts it fired."""
    from ray import serve

    admin_call(api, "/api/v2/admin/flush", SECRET_ENV, method="POST")
    alerts: Counter[str] = Counter()
    for partition in admin_call(api, "/api/v2/stats", SECRET_ENV):
        alerts.update(partition["alerts_fired_by_type"])
    serve.shutdown()
    return alerts


def load_lake(config: DemoConfig, lake_dir: Path, acked: int,
              progress: Callable[[str], None]) -> tuple[Lake, EtlReport]:
    """The landing area into the lake, which must then hold exactly the acknowledged readings."""
    from cgm_ray.lake.etl import discover_inputs, run_etl

    lake = Lake(str(lake_dir), config.lake.buckets, create=True)
    etl = run_etl(lake, discover_inputs(lake), progress=lambda m: progress(f"      {m}"))
    if etl.files_rejected or etl.lake_rows != acked:
        raise PipelineMismatch(f"{acked:,} readings acknowledged but {etl.lake_rows:,} in the "
                               f"lake; rejected: {etl.files_rejected}")
    return lake, etl


def report_median_tir(lake: Lake, patients: pa.Table, out_dir: Path) -> dict[str, str]:
    """The doctor's report of the cohort's typical patient: the one whose time in range is
    the median (the lower of the middle two), a believable patient rather than an extreme."""
    import numpy as np

    from cgm_ray.lake.report import render_report

    tir = patients.column("in_range_70_180").to_numpy(zero_copy_only=False).astype(float)
    order = np.argsort(np.where(np.isfinite(tir), tir, np.inf), kind="stable")
    median = int(order[(np.isfinite(tir).sum() - 1) // 2])
    row = patients.slice(median, 1).to_pylist()[0]
    table = lake.patient_readings(row["patient_id"])
    attributes = {k: row[k] for k in ("age_group", "age_years", "weight_kg", "sensor_model",
                                      "carb_ratio_g_per_u", "correction_factor_mgdl_per_u",
                                      "basal_u_per_h") if k in row}
    files = render_report(row["patient_id"],
                          table.column("ts").cast("int64").to_numpy() * 1_000_000,
                          table.column("glucose_mgdl").to_numpy(), out_dir, attributes)
    return {"patient_id": row["patient_id"], "html": str(files.html), "pdf": str(files.pdf)}


def run_pipeline(config: DemoConfig, scenario_overrides: dict | None = None,
                 address: str | None = None,
                 progress: Callable[[str], None] = print,
                 dashboard_port: int | None = DASHBOARD_PORT) -> DemoSummary:
    """Run the whole pipeline once, stage by stage, and return its summary."""
    import ray
    from ray import serve

    from cgm_ray.lake.cohort import run_cohort

    out = Path(config.out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    lake_dir = out / "lake"
    scenario = {**read_mapping(config.scenario), **(scenario_overrides or {})}
    os.environ.setdefault(SECRET_ENV, secrets.token_urlsafe(24))
    clock = StageClock()
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # the demo prints its own progress
    we_started_ray = not ray.is_initialized()
    progress("[1/6] starting Ray and the ingest API (Ray Serve)")
    try:
        api, dashboard_url = start_ingest_api(config, out, address, dashboard_port)
        progress(f"      API {api} (docs {api}/docs)" + (
            f", Ray dashboard {dashboard_url} ({sign_in_hint()})" if dashboard_url else ""))
        clock.lap("start")
        n = scenario["patients"]["n"] if isinstance(scenario.get("patients"), dict) else "?"
        progress(f"[2/6] fleet: {n} virtual patients streaming into the ingest API")
        fleet = stream_fleet(config, scenario, api, lake_dir)
        alerts = drain_ingest(api)
        clock.lap("fleet")
        progress("[3/6] ETL: landing area -> Parquet lake (Ray Data)")
        lake, etl = load_lake(config, lake_dir, fleet.readings_acked, progress)
        clock.lap("etl")
        progress("[4/6] cohort statistics (Ray Data, one task per patient bucket)")
        cohort = run_cohort(lake, group_by=config.cohort.group_by)
        clock.lap("cohort")
        progress("[5/6] the doctor's report of the patient with the median time in range")
        report = report_median_tir(lake, cohort.patients, out / "reports")
        clock.lap("report")
    finally:
        if we_started_ray:
            serve.shutdown()
            ray.shutdown()
    progress("[6/6] stopped Serve and Ray")
    summary = DemoSummary(
        patients=fleet.sensors, shards=fleet.shards, nodes=fleet.nodes,
        simulated_min=fleet.simulated_min, readings_sent=fleet.readings_sent,
        readings_acked=fleet.readings_acked, lake_rows=etl.lake_rows,
        acked_equals_lake=etl.lake_rows == fleet.readings_acked, alerts_by_type=dict(alerts),
        cohort=cohort.summary, cohort_dir=cohort.location, lake=str(lake_dir), report=report,
        api_url=api, dashboard_url=dashboard_url, seconds=clock.total(),
        summary_file=str(out / "summary.json"),
        followed=cohort.patients.column("patient_id").to_pylist()[:WEB_FOLLOWED])
    (out / "summary.json").write_text(json.dumps(asdict(summary), indent=1))
    return summary


def format_summary(summary: DemoSummary) -> str:
    """What a user reads at the end of ``make demo``."""
    from cgm_ray.lake.cohort import cohort_table

    s = asdict(summary)
    alerts = ", ".join(f"{k} {v:,}" for k, v in sorted(s["alerts_by_type"].items(),
                                                       key=lambda kv: -kv[1])) or "none"
    check = "==" if s["acked_equals_lake"] else "!="
    lines = [
        "",
        f"cgm-ray demo: {s['patients']:,} patients x {s['simulated_min'] / 1440:g} simulated days "
        f"in {s['seconds']['total']:.0f} s",
        f"  readings: {s['readings_sent']:,} sent, {s['readings_acked']:,} acknowledged by the "
        f"ingest {check} {s['lake_rows']:,} in the lake",
        f"  alerts fired: {alerts}",
        "  cohort (medians; 'targets' = % of patients meeting all consensus targets):",
        *("    " + line for line in cohort_table(s["cohort"]).splitlines()),
        f"  lake:   {s['lake']}  (cohort results in {s['cohort_dir']})",
        f"  this summary as JSON: {s['summary_file']}",
        f"  report: {s['report']['html']} and .pdf (patient {s['report']['patient_id']}, "
        "the median time in range)",
        f"  API was {s['api_url']} (OpenAPI {s['api_url']}/docs); Ray dashboard was "
        f"{s['dashboard_url'] or 'off'}; both stopped with the demo",
        "  web app: `make demo DEMO_ARGS=--keep-serving` (cgm-ray demo --keep-serving) simulates "
        "days ending now and serves them with a caregiver's and a clinician's link until Ctrl-C",
        "  stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in s["seconds"].items()),
    ]
    return "\n".join(lines)


def web_link(api_url: str, role: str, subject: str) -> str:
    """The web app's sign-in link for a ``role`` token over ``subject``."""
    from urllib.parse import quote

    from serve_apps.auth import Authenticator

    token = Authenticator(os.environ[SECRET_ENV]).make_token(role, subject)
    return f"{api_url}/?token={quote(token)}"


def register_clinic(api_url: str, lake_dir: Path) -> list[str]:
    """Register the sensors of the lake's first ``WEB_CLINIC`` patients to ``CLINIC_COHORT``,
    as a clinic would, so a clinician's token has a panel to read; the patients registered."""
    import pyarrow as pa
    import pyarrow.compute as pc

    sensors = Lake(str(lake_dir)).sensors()
    if sensors is None:
        return []
    clinic = sorted(set(sensors.column("patient_id").to_pylist()))[:WEB_CLINIC]
    sensors = sensors.filter(pc.is_in(sensors.column("patient_id"), value_set=pa.array(clinic)))
    for row in sensors.select(["sensor_id", "patient_id"]).to_pylist():
        admin_call(api_url, "/api/v2/sensors", SECRET_ENV, method="POST",
                   body={**row, "cohort": CLINIC_COHORT})
    return clinic


def keep_serving(config: DemoConfig, followed: list[str], address: str | None,
                 dashboard_port: int | None = DASHBOARD_PORT) -> None:
    """Serve the demo's ingest again (its logs replayed, the lake behind its history) with the
    web app until Ctrl-C, with a caregiver's and a clinician's link."""
    import ray
    from ray import serve

    out = Path(config.out).resolve()
    api, dashboard_url = start_ingest_api(config, out, address, dashboard_port)
    clinic = register_clinic(api, out / "lake")
    print(f"\nweb app, served until Ctrl-C:\n"
          f"  a caregiver of {len(followed)} patients: {web_link(api, 'caregiver', ','.join(followed))}\n"
          f"  a clinician of {len(clinic)} patients (cohort {CLINIC_COHORT}): "
          f"{web_link(api, 'clinician', CLINIC_COHORT)}\n"
          f"  API docs: {api}/docs" + (f"\n  Ray dashboard: {dashboard_url} ({sign_in_hint()})"
                                       if dashboard_url else ""), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
        ray.shutdown()


def cmd_demo(args) -> int:
    """Run the whole product end to end on an embedded Ray and print a summary."""
    config = load_demo_config(args.config)
    if args.out:
        config = config.model_copy(update={"out": args.out})
    overrides: dict = {}
    if args.patients:
        overrides["patients"] = {**read_mapping(config.scenario)["patients"], "n": args.patients}
    if args.days:
        overrides["duration_min"] = int(args.days * 1440)
    if args.keep_serving:  # the simulated days end now, so the web app shows them as recent
        duration_min = overrides.get("duration_min") or read_mapping(config.scenario)["duration_min"]
        end_ms = int(time.time() // 300 * 300 * 1000)
        overrides["start"] = datetime.fromtimestamp(end_ms / 1000 - duration_min * 60, UTC) \
            .strftime("%Y-%m-%dT%H:%M:%SZ")
    summary = run_pipeline(config, overrides, args.address, dashboard_port=args.dashboard_port)
    print(json.dumps(asdict(summary)) if args.json else format_summary(summary))
    if args.keep_serving:
        keep_serving(config, summary.followed, args.address, args.dashboard_port)
    return 0


def add_commands(sub) -> None:
    demo = sub.add_parser("demo", help="the whole product end to end (what `make demo` runs)",
                          description=cmd_demo.__doc__)
    demo.add_argument("--config", default="configs/demo.yaml", help="demo configuration file")
    demo.add_argument("--out", help="output directory (default: the config's, out/demo)")
    demo.add_argument("--patients", type=int, help="number of virtual patients")
    demo.add_argument("--days", type=float, help="simulated days")
    demo.add_argument("--address", help="Ray cluster address (default: an embedded local Ray)")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.add_argument("--keep-serving", action="store_true",
                      help="simulate days ending now, then serve the ingest and its web app "
                      "(a caregiver's link is printed) until Ctrl-C")
    add_dashboard_option(demo)
    demo.set_defaults(func=cmd_demo)
