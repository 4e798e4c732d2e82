"""Fleet configuration (``configs/fleet.yaml``): what to simulate, how fast, and where to."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from cgm_ray.client import admin_headers
from cgm_ray.config import Strict, read_mapping, validate
from cgm_ray.errors import ConfigError
from simulators.controllers.interface import PERIOD_MIN
from simulators.scenario import Scenario, parse_scenario


class ParquetSinkConfig(Strict):
    """Readings written as Parquet files into the lake's landing area."""

    kind: Literal["parquet"] = "parquet"
    path: str = Field(description="landing directory, a local path or pyarrow filesystem URI")


class HttpSinkConfig(Strict):
    """Readings POSTed to a cgm-ray ingest API (batched, retried, idempotent)."""

    kind: Literal["http"] = "http"
    url: str = Field(pattern=r"^https?://", description="base URL of the ingest API")
    secret_env: str = Field("API_SECRET", description="environment variable with the API secret")
    batch_size: int = Field(5000, ge=1, le=50_000, description="readings per POST")
    concurrency: int = Field(4, ge=1, le=256, description="POSTs in flight per shard")
    timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(8, ge=0, le=50)


class ServeSinkConfig(Strict):
    """Readings handed to the ingest Serve application in the same Ray cluster (no HTTP)."""

    kind: Literal["serve"] = "serve"
    app_name: str = Field("ingest", description="name of the ingest Serve application")
    max_retries: int = Field(8, ge=0, le=50)


class NightscoutSinkConfig(Strict):
    """Each patient as a Nightscout uploader (xDrip+ or Loop) POSTing to a Nightscout-compatible
    server: entries, treatments, device status and (Loop) the profile; batched, retried, idempotent."""

    kind: Literal["nightscout"] = "nightscout"
    url: str = Field(pattern=r"^https?://", description="the site's base URL (without /api/v1)")
    style: Literal["xdrip", "loop"] = Field(
        "xdrip", description="whose uploads to imitate; loop needs a closed-loop therapy.controller")
    api_secret_env: str | None = Field(
        None, description="environment variable with the API secret (default API_SECRET)")
    token: str | None = Field(None, min_length=1, description="an access token (?token=) instead of "
                              "the API secret: one patient's credential")
    batch_size: int = Field(1000, ge=1, le=50_000, description="documents per POST")
    concurrency: int = Field(16, ge=1, le=256, description="POSTs in flight per shard")
    timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(8, ge=0, le=50)

    @field_validator("token")
    @classmethod
    def _one_credential(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and info.data.get("api_secret_env") is not None:
            raise ValueError("give api_secret_env or token, not both")
        return v

    def credentials(self) -> tuple[dict[str, str], dict[str, str]]:
        """The (headers, query parameters) that authenticate every request."""
        if self.token is not None:
            return {}, {"token": self.token}
        return admin_headers(self.api_secret_env or "API_SECRET"), {}


SinkConfig = Annotated[ParquetSinkConfig | HttpSinkConfig | ServeSinkConfig | NightscoutSinkConfig,
                       Field(discriminator="kind")]


class FleetConfig(Strict):
    """A fleet of virtual CGM wearers, sharded over Ray actors."""

    scenario: Scenario
    sink: SinkConfig
    shards: int | Literal["auto"] = Field("auto", description="'auto': one per cluster CPU")
    speedup: float | Literal["max"] = Field(1.0, description="simulated per wall second; 1 = real time")
    tick_min: int = Field(5, ge=1, le=1440, description="simulated minutes per delivery window")
    checkpoint_dir: str | None = Field(None, description="where shards checkpoint; none: no recovery")
    checkpoint_every_min: int = Field(60, ge=1, description="simulated minutes between checkpoints")
    threads_per_shard: int = Field(1, ge=1, le=64)
    attributes_dir: str | None = Field(
        None, description="where shards write their patients' attributes for the lake ETL")

    @field_validator("sink", mode="before")
    @classmethod
    def _parquet_by_default(cls, v: object) -> object:
        return {"kind": "parquet", **v} if isinstance(v, dict) and "kind" not in v else v

    @field_validator("speedup", mode="before")
    @classmethod
    def _positive_speedup(cls, v: object) -> object:
        if v == "max":
            return v
        try:
            factor = float(v)
        except (TypeError, ValueError):
            raise ValueError("must be a number > 0 (1 = real time) or 'max'") from None
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"must be > 0 (1 = real time) or 'max', got {v}")
        return factor

    @field_validator("tick_min")
    @classmethod
    def _whole_decision_periods(cls, v: int, info: ValidationInfo) -> int:
        scenario = info.data.get("scenario")
        if scenario is not None and scenario.therapy.controller.closes_loop and v % PERIOD_MIN:
            raise ValueError(f"must be a multiple of {PERIOD_MIN} (the closed loop decides every "
                             f"{PERIOD_MIN} min), got {v}")
        return v

    @field_validator("checkpoint_every_min")
    @classmethod
    def _whole_ticks(cls, v: int, info: ValidationInfo) -> int:
        tick = info.data.get("tick_min")
        if tick and v % tick:
            raise ValueError(f"must be a multiple of tick_min ({tick}), got {v}")
        return v

    @field_validator("shards")
    @classmethod
    def _at_most_patients(cls, v: int | str, info: ValidationInfo) -> int | str:
        scenario = info.data.get("scenario")
        if isinstance(v, int) and scenario is not None and not 1 <= v <= scenario.n_patients:
            raise ValueError(f"must be between 1 and the number of patients "
                             f"({scenario.n_patients}), got {v}")
        return v

    def shard_ranges(self, n_shards: int) -> list[tuple[int, int]]:
        """Patient index ranges [lo, hi) of each shard, as equal as possible."""
        n = self.scenario.n_patients
        bounds = [n * k // n_shards for k in range(n_shards + 1)]
        return list(zip(bounds[:-1], bounds[1:]))


def parse_fleet_config(data: dict) -> FleetConfig:
    """Validate a fleet config mapping (errors name the field)."""
    if isinstance(data.get("scenario"), dict):
        try:  # scenario-level checks (patient names, sensor model)
            parse_scenario(data["scenario"])
        except ConfigError as exc:
            raise ConfigError(f"scenario.{exc.field}", exc.message) from None
    config = validate(FleetConfig, data)
    if config.scenario.n_patients < 1:
        raise ConfigError("scenario.patients", "a fleet needs at least one sensor")
    sink = config.sink
    if sink.kind == "nightscout":
        if sink.style == "loop" and not config.scenario.therapy.controller.closes_loop:
            raise ConfigError("sink.style", "loop uploads a closed loop's decisions: give the scenario "
                              "a closed-loop therapy.controller (pid, oref0, loop_reference, ...)")
        if sink.token is not None and config.scenario.n_patients > 1:
            raise ConfigError("sink.token", f"a token is one patient's credential, and the fleet has "
                              f"{config.scenario.n_patients} patients: use api_secret_env")
    return config


def load_fleet_config(path: str) -> FleetConfig:
    """Read ``configs/fleet.yaml``-style files."""
    return parse_fleet_config(read_mapping(path))
