"""What every route of the ingress shares: settings, credentials, partitions, bodies, writes.

``serve_apps.ingress.Ingress`` (the Serve deployment) combines this with the route mixins of
``serve_apps.nightscout``; only the deployment class is decorated for Serve.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import Request
from pydantic import ValidationError
from ray.serve.handle import DeploymentHandle

from cgm_ray.sharding import shard_of
from serve_apps.auth import Authenticator, AuthError, Forbidden, Principal
from serve_apps.batching import write_coalesced
from serve_apps.coalescer import Coalescer
from serve_apps.config import IngestConfig
from serve_apps.http_api import HTTPProblem, bearer
from serve_apps.nightscout.documents import Document, normalise
from serve_apps.one_reading import Reading, check_request
from serve_apps.partition import LocalPartition, PartitionClient, RemotePartition
from serve_apps.rate_limit import TokenBucket, retry_after_s
from serve_apps.replies import UNAVAILABLE, PartitionWrite, Rejection, WriteCounts
from serve_apps.telemetry import IngressTelemetry
from serve_apps.validation import (
    InvalidBody,
    InvalidReadings,
    NightscoutEntry,
    ReadingBatch,
    entries_table,
)

LEVELS_PERIOD_S = 1.0  # how often the rate limits' levels go to the metrics


def now_ms() -> int:
    """The wall clock in epoch milliseconds."""
    return int(time.time() * 1000)


class IngressBase:
    """The ingress's state and helpers (routes live in subclasses)."""

    def __init__(self, partitions: list[DeploymentHandle], config: dict) -> None:
        """``partitions``: the handles of the partition deployments, none if the partition
        is co-located (``IngestConfig.colocate_partition``): this replica then holds it."""
        self.config = IngestConfig(**config)
        self.partitions: list[PartitionClient] = (
            [LocalPartition(0, self.config)] if self.config.colocate_partition
            else [RemotePartition(handle) for handle in partitions])
        self.auth = Authenticator(os.environ.get(self.config.api_secret_env) or None)
        self.limiter = TokenBucket(self.config.rate_limit_per_s)
        self.patient_limiter = TokenBucket(self.config.patient_rate_limit_per_s,
                                           self.config.patient_rate_limit_burst)
        self.telemetry = IngressTelemetry()
        self.telemetry.rate_limits({"credential": self.config.rate_limit_per_s,
                                    "patient": self.config.patient_rate_limit_per_s})
        self._levels_seen_s = 0.0
        # Concurrent requests' readings share one write per partition, not one each:
        # admission, alerts and the log's fsync cost per write, not per row (one reading
        # written alone cost ~390 us of CPU, in a write of ten ~70 us).
        # - A co-located partition writes on this event loop: group commit. A write starts
        #   as soon as the loop gets to it, and while one is in flight the next gathers
        #   every request that arrives (~12 a write at 3,500 requests/s from 24
        #   connections). Waiting up to 5 ms for company, with two writes in flight, made
        #   writes of ~23 but left the loop idle while clients waited: 2,270-2,400
        #   requests/s against 3,070-3,720 (six alternating rounds). Pipelining commits gave
        #   fewer (writes of ~7). The log's sync runs in a kernel worker (``kernel_fsync``),
        #   so the loop serves the next write's requests meanwhile.
        # - A remote partition's write is a handle call, costly per call and not on this
        #   loop: requests wait up to 5 ms to share one, two in flight (with 2 partitions,
        #   1,340-1,460 requests/s against 1,230-1,350 for group commit, four rounds).
        local = self.config.colocate_partition
        self._writes: Coalescer[pa.Table | Reading, WriteCounts | Rejection] = Coalescer(
            self._write, max_size=256, max_wait_s=0.0 if local else 0.005,
            max_in_flight=1 if local else 2)

    # -- helpers -----------------------------------------------------------------------
    def _partition(self, patient_id: str) -> PartitionClient:
        return self.partitions[shard_of(patient_id, len(self.partitions))]

    def _principal(self, request: Request) -> Principal:
        try:
            principal = self.auth.authenticate(request.headers.get("api-secret"),
                                               request.query_params.get("token")
                                               or bearer(request))
        except AuthError as exc:
            self.telemetry.rejected.inc(1, {"status": "401"})
            raise HTTPProblem(401, "Unauthorized", str(exc)) from None
        if wait_s := self.limiter.take(principal.name):
            raise self._too_many("this credential", self.config.rate_limit_per_s, wait_s)
        now_s = time.monotonic()
        if now_s - self._levels_seen_s >= LEVELS_PERIOD_S:
            self._levels_seen_s = now_s
            self.telemetry.rate_levels("credential", self.limiter.levels())
            self.telemetry.rate_levels("patient", self.patient_limiter.levels())
        return principal

    def _take_patient(self, patient_id: str) -> None:
        """429 when ``patient_id``'s writes are over their rate (requests about one patient)."""
        if wait_s := self.patient_limiter.take(patient_id):
            raise self._too_many(f"patient {patient_id!r}", self.config.patient_rate_limit_per_s,
                                 wait_s)

    def _too_many(self, who: str, rate_per_s: float, wait_s: float) -> HTTPProblem:
        self.telemetry.rejected.inc(1, {"status": "429"})
        return HTTPProblem(429, "Too Many Requests",
                           f"{who}: more than {rate_per_s:g} requests/s; retry after {wait_s:.1f} s",
                           {"retry-after": retry_after_s(wait_s)})

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.config.max_body_bytes:
            self.telemetry.rejected.inc(1, {"status": "413"})
            raise HTTPProblem(413, "Payload Too Large",
                              f"body over {self.config.max_body_bytes} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.config.max_body_bytes:
                raise HTTPProblem(413, "Payload Too Large",
                                  f"body over {self.config.max_body_bytes} bytes")
        return bytes(body)

    async def _read_access(self, request: Request, patient_id: str) -> None:
        await self._check_read(self._principal(request), patient_id)

    async def _check_read(self, principal: Principal, patient_id: str) -> None:
        """403 unless ``principal`` may read ``patient_id`` (clinicians: by cohort)."""
        cohort = (await self._partition(patient_id).cohort(patient_id)
                  if principal.role == "clinician" else None)
        try:
            principal.require_read(patient_id, cohort)
        except Forbidden as exc:
            raise HTTPProblem(403, "Forbidden", str(exc)) from None

    @staticmethod
    def _check_write(principal: Principal, patient_id: str) -> None:
        """403 unless ``principal`` may write for ``patient_id`` (its uploader, or admin)."""
        try:
            principal.require_write(patient_id)
        except Forbidden as exc:
            raise HTTPProblem(403, "Forbidden", str(exc)) from None

    def _ns_patient(self, request: Request, principal: Principal) -> str:
        """The patient a Nightscout route is about: the token's (a caregiver's first, or the
        one of theirs ``?patient=`` names), or ``?patient=`` for admin and clinician."""
        asked = request.query_params.get("patient")
        if principal.role in ("admin", "clinician"):
            return asked or self.config.default_patient
        if asked and asked not in principal.patients:
            raise HTTPProblem(403, "Forbidden", f"this credential is for patient {principal.subject!r}")
        return asked or principal.patients[0]

    # -- Nightscout records ----------------------------------------------------------------
    async def _json(self, request: Request) -> Any:
        """The body as JSON; 400 if it is not, or if it could not be answered back as JSON
        in UTF-8 (a lone surrogate such as ``"\\ud800"``, or NaN, Infinity and 1e400, which
        Python's parser accepts and no JSON encoder writes)."""
        try:
            data = json.loads(await self._body(request))
            json.dumps(data, ensure_ascii=False, allow_nan=False).encode()
        except (ValueError, UnicodeError, RecursionError) as exc:
            raise HTTPProblem(400, "Bad Request", f"malformed JSON: {exc}") from None
        return data

    async def _json_items(self, request: Request, name: str) -> list[Any]:
        """The body as a list of records (one object or an array of them, maybe empty)."""
        data = await self._json(request)
        items = data if isinstance(data, list) else [data]
        if len(items) > self.config.max_batch:
            raise HTTPProblem(422, "Unprocessable Entity",
                              f"{name}: at most {self.config.max_batch} records per request")
        return items

    @staticmethod
    def _sgv_readings(items: list[Any], patient_id: str) -> tuple[list[NightscoutEntry], pa.Table]:
        """Nightscout sgv entries and the readings they are for ``patient_id``; 422 naming the
        field that is wrong."""
        try:
            entries = [NightscoutEntry.model_validate(x) for x in items]
            return entries, entries_table(entries, patient_id)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise HTTPProblem(422, "Unprocessable Entity",
                              f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        except InvalidReadings as exc:
            raise HTTPProblem(422, "Unprocessable Entity", str(exc)) from None

    def _normalise(self, collection: str, items: list[Any]) -> list[Document]:
        """Nightscout documents as stored (``normalise``); 422 naming the field otherwise."""
        now = now_ms()
        docs = []
        for row, item in enumerate(items):
            try:
                docs.append(normalise(collection, item, now))
            except InvalidBody as exc:
                where = f" (record {row})" if len(items) > 1 else ""
                raise HTTPProblem(422, "Unprocessable Entity",
                                  f"{exc.field}{where}: {exc.message}") from None
        return docs

    async def _put(self, patient_id: str, docs: list[Document]) -> list[dict]:
        """Store documents; 503 (retry) if the log could not make them durable."""
        if not docs:
            return []
        self._take_patient(patient_id)
        try:
            return await self._partition(patient_id).put_documents(patient_id, docs)
        except Exception as exc:  # the partition rolled back: nothing was acknowledged
            raise HTTPProblem(503, "Service Unavailable",
                              f"not stored, retry: {type(exc).__name__}") from None

    async def _remove(self, patient_id: str, collection: str, keys: list[str]) -> int:
        """Soft-delete documents; how many were deleted; 503 (retry) if not made durable."""
        try:
            return await self._partition(patient_id).delete_documents(patient_id, collection,
                                                                     keys)
        except Exception as exc:
            raise HTTPProblem(503, "Service Unavailable",
                              f"not deleted, retry: {type(exc).__name__}") from None

    def _refuse(self, rejection: Rejection) -> HTTPProblem:
        self.telemetry.rejected.inc(1, {"status": str(rejection.status)})
        return HTTPProblem(rejection.status, rejection.phrase, rejection.reason)

    async def _store(self, data: pa.Table | ReadingBatch, principal: Principal,
                     limit_patient: bool = True) -> WriteCounts:
        """Validate and authorise one request's readings, then write them (coalesced); a
        request about one patient takes a token of that patient's rate limit."""
        now = now_ms()
        try:
            checked = check_request(data, now, self.config.max_future_skew_s,
                                    self.config.min_ts_ms, self.config.max_batch)
        except InvalidReadings as exc:
            self.telemetry.rejected.inc(1, {"status": "422"})
            raise HTTPProblem(422, "Unprocessable Entity", str(exc)) from None
        patients = ([checked.patient_id] if isinstance(checked, Reading)
                    else pc.unique(checked.column("patient_id")).to_pylist())
        for pid in patients:
            self._check_write(principal, pid)
        if limit_patient and len(patients) == 1:
            self._take_patient(patients[0])
        started = time.perf_counter()
        try:
            result = await self._writes.submit(checked)
        except Exception:  # the batch's write failed: nothing of it was acknowledged
            result = UNAVAILABLE
        self.telemetry.latency.observe((time.perf_counter() - started) * 1000, {"route": "write"})
        if isinstance(result, Rejection):
            raise self._refuse(result)
        return result

    async def _write(self, requests: list[pa.Table | Reading]) -> list[WriteCounts | Rejection]:
        """Coalesced requests' readings, one write per partition (``write_coalesced``)."""
        return await write_coalesced(requests, len(self.partitions), self._send)

    async def _send(self, partition: int, table: pa.Table) -> PartitionWrite | Rejection:
        return await self.partitions[partition].ingest(table)

    async def write_readings(self, table: pa.Table) -> WriteCounts | Rejection:
        """In-cluster writes through a deployment handle (the fleet's Serve sink).

        Only code inside the Ray cluster holds handles, so this is the admin path without
        HTTP; validation, coalescing and durability are those of ``POST /api/v2/readings``.
        A refusal comes back as a ``Rejection`` value rather than an exception (which would
        reach the caller wrapped in Ray's error types).
        """
        try:
            return await self._store(table, Principal("admin", "*"), limit_patient=False)
        except HTTPProblem as exc:
            return Rejection(exc.status, exc.description)

    def _require_admin(self, request: Request) -> None:
        if self._principal(request).role != "admin":
            raise HTTPProblem(403, "Forbidden", "admin only")

    async def check_health(self) -> None:
        """Serve calls this every few seconds: it also drives a co-located partition's
        timers (signal-loss alerts, rolling an idle log segment)."""
        for partition in self.partitions:
            partition.tick_if_due()
