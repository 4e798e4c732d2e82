"""Nightscout sink: the fleet as Nightscout uploaders, one per patient (xDrip+ or Loop style).

Each window becomes, per patient, a POST of its entries to ``/api/v1/entries`` (in batches of
``batch_size``), one of its treatments to ``/api/v1/treatments`` and one of its device status
to ``/api/v1/devicestatus``; a loop-style sink also POSTs each patient's profile to
``/api/v1/profile`` with the window that starts the run (simulated minute 0). Every request
carries ``?patient=<patient_id>``, which a cgm-ray server uses to keep patients apart (a
Nightscout site, one person's, ignores it), and the credential: the ``api-secret`` header or
a ``?token=``. The documents (``actors.sinks.nightscout_docs``) have deterministic identities,
so the retries of the ``Poster`` (``actors.sinks.posting``) and windows re-delivered after a
shard restart never store anything twice.

Trend arrows continue across windows: the sink remembers each patient's last reading (and the
loop's last CGM value) of the previous window. A restarted shard forgets them, so the first
reading of each patient after a restart has no arrow; that window was delivered before, and
the server keeps the first copy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

import numpy as np
import pyarrow as pa

from actors.sinks.base import Delivery, Window
from actors.sinks.nightscout_docs import (
    LoopCycle,
    Reading,
    Style,
    entry,
    loop_devicestatus,
    profile_document,
    summed_treatments,
    temp_basal,
    treatment,
    xdrip_devicestatus,
)
from actors.sinks.posting import Poster, Request
from cgm_ray.glucose.trend import direction, slope_mgdl_per_min
from simulators.nightscout_profile import ProgrammedTherapy, nightscout_profile

JSON = "application/json"


class LastSeen:
    """Each patient's newest (ts_ms, value) of earlier windows, to continue trends across windows."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}

    def previous(self, patients: list[str], ts_ms: np.ndarray, values: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        """The (ts_ms, value) before each row (rows sorted by patient, then time; NaN: none),
        and remember each patient's last row."""
        n = len(patients)
        prev_ts, prev_value = np.full(n, np.nan), np.full(n, np.nan)
        if not n:
            return prev_ts, prev_value
        prev_ts[1:], prev_value[1:] = ts_ms[:-1], values[:-1]
        p = np.asarray(patients, dtype=object)
        change = p[1:] != p[:-1]
        for i in np.flatnonzero(np.r_[True, change]):
            prev_ts[i], prev_value[i] = self._last.get(p[i], (np.nan, np.nan))
        for i in np.flatnonzero(np.r_[change, True]):
            self._last[p[i]] = (float(ts_ms[i]), float(values[i]))
        return prev_ts, prev_value


def by_patient(docs: Iterable[tuple[str, dict]]) -> dict[str, list[dict]]:
    """Documents grouped by patient, in order."""
    groups: dict[str, list[dict]] = {}
    for patient_id, doc in docs:
        groups.setdefault(patient_id, []).append(doc)
    return groups


class NightscoutSink:
    """Delivers windows to a Nightscout-compatible server at ``url`` as ``style`` uploaders."""

    wants_treatments = True

    def __init__(self, url: str, style: Style, headers: Mapping[str, str], params: Mapping[str, str],
                 batch_size: int = 1000, concurrency: int = 16, timeout_s: float = 30.0,
                 max_retries: int = 8, therapy: ProgrammedTherapy | None = None,
                 backoff_s: float = 0.2) -> None:
        self.base = url.rstrip("/") + "/api/v1"
        self.style, self.batch_size, self.therapy = style, batch_size, therapy
        self.headers = {"content-type": JSON, **headers}
        self.params = dict(params)
        self.poster = Poster(concurrency, timeout_s, max_retries, backoff_s)
        self._readings_seen, self._cycles_seen = LastSeen(), LastSeen()

    # -- what a window becomes -------------------------------------------------------------
    def readings(self, table: pa.Table) -> list[Reading]:
        """The window's readings with their trend arrows."""
        patients = table.column("patient_id").to_pylist()
        ts = table.column("ts_ms").to_numpy()
        glucose = table.column("glucose_mgdl").to_numpy().astype(np.float64)
        prev_ts, prev_glucose = self._readings_seen.previous(patients, ts, glucose)
        slope = slope_mgdl_per_min(prev_glucose, prev_ts, glucose, ts)
        delta = [None if np.isnan(v) else float(v) * 5.0 for v in slope]  # per 5 min, as Nightscout's
        return [Reading(p, int(t), float(g), d, str(a))
                for p, t, g, d, a in zip(patients, ts, glucose, delta, direction(slope))]

    def cycles(self, loop: pa.Table | None, start_ms: int) -> list[LoopCycle]:
        """A closed loop's cycles of the window, each with the CGM value of the cycle before."""
        if loop is None:
            return []
        rows = loop.to_pylist()
        glucose = np.array([np.nan if r["glucose_mgdl"] is None else r["glucose_mgdl"] for r in rows])
        _, previous = self._cycles_seen.previous([r["patient_id"] for r in rows],
                                                 loop.column("ts_ms").to_numpy(), glucose)
        return [LoopCycle(r["patient_id"], r["ts_ms"], r["glucose_mgdl"],
                          None if np.isnan(prev) else float(prev), r["basal_u_per_h"],
                          r["scheduled_basal_u_per_h"], r["iob_u"], r["cob_g"], r["fallback"], start_ms)
                for r, prev in zip(rows, previous)]

    def documents(self, window: Window) -> tuple[list[Reading], dict[str, list[tuple[str, dict]]]]:
        """The window's readings, and its other documents by collection as (patient, document)."""
        readings = self.readings(window.readings)
        cycles = self.cycles(window.loop, window.start_ms)
        rows = window.treatments.to_pylist() if window.treatments is not None else []
        treatments = [(t.patient_id, treatment(self.style, t)) for t in summed_treatments(self.style, rows)]
        if self.style == "loop":
            treatments += [(c.patient_id, temp_basal(c)) for c in cycles if c.temp_running]
            status = [(c.patient_id, loop_devicestatus(c)) for c in cycles]
        else:
            newest = {r.patient_id: r.ts_ms for r in readings}  # readings are in time order
            status = [(p, xdrip_devicestatus(p, ts)) for p, ts in newest.items()]
        docs = {"treatments": treatments, "devicestatus": status}
        if self.style == "loop" and self.therapy is not None and window.t0_min == 0:
            docs["profile"] = self.profiles(self.therapy, window.start_ms)
        return readings, docs

    @staticmethod
    def profiles(therapy: ProgrammedTherapy, start_ms: int) -> list[tuple[str, dict]]:
        """Each patient's profile, as Loop uploads it once at the start."""
        return [(name, profile_document(nightscout_profile(therapy, row, start_ms), name))
                for row, name in enumerate(therapy.names)]

    # -- sending -------------------------------------------------------------------------
    def _requests(self, collection: str, docs: Iterable[tuple[str, dict]]) -> list[tuple[Request, int]]:
        """POSTs of ``docs`` to ``collection``: per patient, in batches; with each its size."""
        out = []
        for patient_id, group in by_patient(docs).items():
            for k in range(0, len(group), self.batch_size):
                batch = group[k:k + self.batch_size]
                one_each = collection == "profile"  # a patient's profile is one object
                body = json.dumps(batch[0] if one_each else batch, separators=(",", ":")).encode()
                out.append((Request(f"{self.base}/{collection}", body, self.headers,
                                    {"patient": patient_id, **self.params}), len(batch)))
        return out

    def deliver(self, window: Window) -> Delivery:
        readings, docs = self.documents(window)
        entries = self._requests("entries", ((r.patient_id, entry(self.style, r)) for r in readings))
        others = [req for collection, found in docs.items() for req in self._requests(collection, found)]
        sent = entries + others
        results = self.poster.post_all([request for request, _ in sent])
        acked = [size if ok else 0 for (_, size), ok in zip(sent, results)]
        readings_acked, documents_acked = sum(acked[:len(entries)]), sum(acked[len(entries):])
        documents = sum(size for _, size in others)
        return Delivery(acked=readings_acked, failed=len(readings) - readings_acked,
                        documents_acked=documents_acked, documents_failed=documents - documents_acked)

    def close(self) -> None:
        self.poster.close()
