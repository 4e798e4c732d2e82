"""Ingest service configuration (``configs/serve.yaml`` ``args``, or defaults)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from cgm_ray.config import Strict
from cgm_ray.glucose.units import GlucoseUnits
from cgm_ray.schema import EARLIEST_TS_MS


class IngestConfig(Strict):
    """Settings of the ingest application; every field has a working default."""

    data_dir: str = Field("out/ingest", description="write-ahead logs and registry state")
    landing_dir: str = Field("out/lake/landing/ingest",
                             description="closed log segments, loaded by the lake ETL")
    documents_landing_dir: str = Field(
        "out/lake/landing/documents", description="closed log segments of Nightscout documents "
        "(treatments, devicestatus, profiles), loaded by the lake ETL")
    lake_dir: str | None = Field("out/lake", description=(
        "the Parquet lake the web app's history, reports and cohort panel read, before the "
        "hot readings the lake has not loaded yet (None: hot readings only)"))
    partitions: int = Field(1, ge=1, le=256, description=(
        "stateful partitions (by patient); each coalesced write costs one call per partition "
        "it touches, so one is fastest on 2 cores: add partitions with cores and sensors"))
    ingress_replicas: int = Field(1, ge=1, le=256, description="stateless ingress replicas "
                                  "(a serve config's autoscaling_config overrides this)")
    colocate_partition: bool | None = Field(None, validate_default=True, description=(
        "run the partition inside the ingress replica (no partition deployment): a write "
        "then costs no handle call, serialisation or second replica. Needs "
        "partitions = 1 and ingress_replicas = 1 (the replica holds the log: it must not be "
        "autoscaled; a second replica would wait for the partition's lock, then fail); None: "
        "on exactly then"))
    hot_readings: int = Field(288, ge=12, le=20_000, description="recent readings kept per sensor")
    auto_register: bool = Field(True, description="register unknown sensors on first reading")
    max_body_bytes: int = Field(8 << 20, ge=1024, description="largest request body accepted")
    max_batch: int = Field(50_000, ge=1, description="most readings in one request")
    max_documents: int = Field(20_000, ge=100, description=(
        "Nightscout documents kept per patient and collection for reads (older ones are in "
        "the lake); 20,000 is 10 weeks of a closed loop's treatments"))
    max_future_skew_s: int = Field(300, ge=0, description="how far ahead a timestamp may be")
    min_ts_ms: int = Field(EARLIEST_TS_MS, description="oldest timestamp accepted (2000-01-01)")
    segment_max_bytes: int = Field(64 << 20, ge=1 << 16)
    segment_max_age_s: float = Field(60.0, gt=0)
    wal_fsync: Literal["kernel", "loop"] = Field("kernel", description=(
        "'kernel': the logs' fdatasync runs in a kernel worker (io_uring, or Linux AIO where "
        "io_uring is refused) while the event loop goes on serving, and falls back to 'loop' "
        "where neither is granted; 'loop': a blocking call on the event loop"))
    signal_loss_clock: Literal["wall", "readings"] = Field(
        "wall", description="'readings': the newest reading time seen, for replays and "
        "accelerated fleets whose timestamps are not the wall clock's")
    timer_period_s: float = Field(10.0, gt=0, description="signal-loss checks and segment rolls")
    alert_batch_ms: float = Field(10.0, ge=0, le=1000, description=(
        "alert rules run over the readings made durable in this window, not once a write "
        "(their cost is per run, not per reading); a read of alert state runs them first"))
    api_secret_env: str = Field("API_SECRET", description="environment variable holding the secret")
    rate_limit_per_s: float = Field(1000.0, gt=0, description=(
        "requests/s per credential and ingress replica (burst 2x): above what a replica serves "
        "(about 1,000 single readings/s), so a site secret shared by every uploader is a guard "
        "against a runaway client, not a cap on the deployment"))
    patient_rate_limit_per_s: float = Field(1.0, gt=0, description=(
        "writes/s per patient and ingress replica, for requests about one patient (a phone's "
        "upload; batches of several patients count against their credential only)"))
    patient_rate_limit_burst: float = Field(30.0, ge=1, description=(
        "writes a patient may send at once: a Loop cycle is 3-4, a backfill after lost signal "
        "more"))
    site_name: str = "cgm-ray"
    units: GlucoseUnits = Field("mg/dl", description="display units of the Nightscout routes "
                                "(status.json, profiles, properties): 'mg/dl' or 'mmol'")
    default_patient: str = Field("default", description="patient of the API-secret Nightscout routes")

    @field_validator("colocate_partition")
    @classmethod
    def _one_partition_one_replica(cls, value: bool | None, info: ValidationInfo) -> bool:
        """Resolve the default, and refuse a co-location that would split a partition's
        state: each ingress replica would open the same log, or hold only one partition."""
        alone = info.data.get("partitions") == 1 and info.data.get("ingress_replicas") == 1
        if value and not alone:
            raise ValueError("a partition co-located with the ingress needs partitions = 1 and "
                             f"ingress_replicas = 1 (got {info.data.get('partitions')} and "
                             f"{info.data.get('ingress_replicas')})")
        return alone if value is None else value
