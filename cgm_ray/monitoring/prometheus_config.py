"""Prometheus's configuration for a local Ray: its nodes from Ray's service-discovery file, and
cgm-ray's recording rules. Pure: settings in, YAML text out."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import yaml

SERVICE_DISCOVERY_FILE = "prom_metrics_service_discovery.json"
RECORDING_RULES = files(__package__).joinpath("recording_rules.yml")


def ray_temp_dir() -> Path:
    """Where a local Ray keeps its sessions: Ray's own rule ($RAY_TMPDIR, $TMPDIR, /tmp)."""
    root = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    return Path(root) / "ray"


def service_discovery_file(ray_dir: Path) -> Path:
    """The file listing every Ray node's metrics endpoint. The dashboard writes it in the
    newest session and links it here, so one path follows each Ray that starts."""
    return ray_dir / SERVICE_DISCOVERY_FILE


@dataclass(frozen=True)
class PrometheusSettings:
    """One local Prometheus: where it listens, keeps its data and finds Ray."""

    port: int
    data_dir: Path
    targets_file: Path
    scrape_interval_s: int = 5
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "prometheus.yml"

    @property
    def rules_file(self) -> Path:
        return self.data_dir / "recording_rules.yml"

    @property
    def tsdb_dir(self) -> Path:
        return self.data_dir / "tsdb"


def render_config(settings: PrometheusSettings) -> str:
    """prometheus.yml: scrape Ray's nodes every ``scrape_interval_s`` and evaluate the rules
    as often. The file is re-read every interval too: Ray rewrites it in each new session's
    folder, and Prometheus's file watch sees only the folder the link is in."""
    interval = f"{settings.scrape_interval_s}s"
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(settings.rules_file)],
        "scrape_configs": [{
            "job_name": "ray",
            "file_sd_configs": [{"files": [str(settings.targets_file)],
                                 "refresh_interval": interval}],
        }],
    }
    return yaml.safe_dump(config, sort_keys=False)


def write_config(settings: PrometheusSettings) -> None:
    """Write prometheus.yml and the recording rules into ``settings.data_dir``."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.rules_file.write_text(RECORDING_RULES.read_text())
    settings.config_file.write_text(render_config(settings))
