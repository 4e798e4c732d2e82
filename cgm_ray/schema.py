"""The Arrow schemas every part of cgm-ray exchanges: readings, traces, landing and lake rows."""

from __future__ import annotations

import pyarrow as pa

# No reading is older than this (2000-01-01T00:00:00Z): the ingest refuses and the lake
# rejects anything earlier as a clock error.
EARLIEST_TS_MS = 946_684_800_000

# The media type of reading batches as Arrow IPC streams (the ingest's binary body).
ARROW_STREAM = "application/vnd.apache.arrow.stream"

READING_SCHEMA = pa.schema([
    pa.field("patient_id", pa.dictionary(pa.int32(), pa.string()), nullable=False),
    pa.field("sensor_id", pa.dictionary(pa.int32(), pa.string()), nullable=False),
    pa.field("ts_ms", pa.int64(), nullable=False),  # epoch milliseconds, UTC
    pa.field("glucose_mgdl", pa.float32(), nullable=False),
    pa.field("range_flag", pa.int8(), nullable=False),  # -1 LOW, 0 in range, 1 HIGH
])

TRACE_SCHEMA = pa.schema([
    pa.field("patient", pa.dictionary(pa.int32(), pa.string()), nullable=False),
    pa.field("minute", pa.int64(), nullable=False),
    pa.field("gsub_mgdl", pa.float64(), nullable=False),  # interstitial, x12/Vg
    pa.field("bg_mgdl", pa.float64(), nullable=False),  # plasma, x3/Vg
])


# What the ingest stores durably (write-ahead log segments in the landing area).
LANDING_SCHEMA = pa.schema([
    pa.field("patient_id", pa.string(), nullable=False),
    pa.field("sensor_id", pa.string(), nullable=False),
    pa.field("ts_ms", pa.int64(), nullable=False),
    pa.field("glucose_mgdl", pa.float32(), nullable=False),
    pa.field("range_flag", pa.int8(), nullable=False),
    pa.field("received_ms", pa.int64(), nullable=False),  # when the ingest accepted it
    # the uploader's trend arrow (cgm_ray.glucose.trend.TREND_CODES), 0 if it sent none
    pa.field("trend", pa.int8(), nullable=False),
])

# The lake's readings table (``readings/bucket=NN/date=YYYY-MM-DD/*.parquet``): one row per
# distinct (sensor_id, ts), sorted by (patient_id, ts) inside each file. ``bucket`` and
# ``date`` are Hive partition columns taken from the path, not stored in the files.
LAKE_SCHEMA = pa.schema([
    pa.field("patient_id", pa.string(), nullable=False),
    pa.field("sensor_id", pa.string(), nullable=False),
    pa.field("ts", pa.timestamp("ms", tz="UTC"), nullable=False),
    pa.field("glucose_mgdl", pa.float32(), nullable=False),
    pa.field("range_flag", pa.int8(), nullable=False),  # -1 LOW, 0 in range, 1 HIGH
    pa.field("source", pa.string(), nullable=False),  # ingest, fleet or import
])

# Treatments a simulation knows of (``cgm-ray simulate`` writes them; the report marks them):
# hypo rescue carbohydrate, and boluses with the carb units planned (a bolus flagged
# ``correction`` may carry more, decided inside the kernel from glucose at that minute).
# A fleet's windows (``actors.window_events``) add the kinds meal (carbs eaten) and auto_bolus.
TREATMENT_SCHEMA = pa.schema([
    pa.field("patient_id", pa.string(), nullable=False),
    pa.field("ts_ms", pa.int64(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),  # hypo_carbs, bolus (fleet: meal, auto_bolus)
    pa.field("carbs_g", pa.float64()),
    pa.field("insulin_u", pa.float64()),
    pa.field("correction", pa.bool_()),
])


# What the ingest stores durably of Nightscout documents (treatments, devicestatus, profile,
# and entries other than sgv): one row per version of a document, appended on every create,
# update and delete, so the newest ``srv_modified_ms`` of an ``identifier`` is its state.
# ``document`` is the normalised record as JSON, carrying ``_id``, ``identifier``, ``date``
# (epoch ms), ``srvCreated``, ``srvModified`` and, once deleted, ``isValid: false``.
DOCUMENT_COLLECTIONS = ("treatments", "devicestatus", "profile", "entries")
DOCUMENT_SCHEMA = pa.schema([
    pa.field("patient_id", pa.string(), nullable=False),
    pa.field("collection", pa.string(), nullable=False),  # one of DOCUMENT_COLLECTIONS
    pa.field("identifier", pa.string(), nullable=False),  # stable per document (UUID)
    pa.field("date_ms", pa.int64(), nullable=False),  # the event's time, epoch ms UTC
    pa.field("srv_modified_ms", pa.int64(), nullable=False),  # when this version was stored
    pa.field("is_valid", pa.bool_(), nullable=False),  # false: deleted (soft, as API v3)
    pa.field("document", pa.string(), nullable=False),  # the record, JSON
])

# The lake's tables of Nightscout documents (``<table>/bucket=NNN/part-<run>.parquet``, one
# file per patient bucket, rows sorted by (patient_id, ts)): the newest version of every
# document not deleted. ``ts`` is the event's time (the landing row's ``date_ms``),
# ``srv_modified_ms`` that of the version kept, ``document`` the whole record as JSON; the
# other columns are taken from it (null where the record has no such field).
_DOCUMENT_KEY = [
    pa.field("patient_id", pa.string(), nullable=False),
    pa.field("identifier", pa.string(), nullable=False),
    pa.field("ts", pa.timestamp("ms", tz="UTC"), nullable=False),
    pa.field("srv_modified_ms", pa.int64(), nullable=False),
]
_DOCUMENT_JSON = pa.field("document", pa.string(), nullable=False)

LAKE_TREATMENTS_SCHEMA = pa.schema([
    *_DOCUMENT_KEY,
    pa.field("event_type", pa.string()),  # Meal Bolus, Correction Bolus, Temp Basal, ...
    pa.field("insulin_u", pa.float64()),
    pa.field("carbs_g", pa.float64()),
    pa.field("duration_min", pa.float64()),
    pa.field("rate_u_per_h", pa.float64()),  # a temp basal's rate: ``absolute``, else ``rate``
    pa.field("rate_change_pct", pa.float64()),  # a temp basal's ``percent``: -50 is half the schedule
    pa.field("entered_by", pa.string()),
    _DOCUMENT_JSON,
])

LAKE_DEVICESTATUS_SCHEMA = pa.schema([
    *_DOCUMENT_KEY,
    pa.field("device", pa.string()),  # loop://iPhone, openaps://rig, ...
    pa.field("iob_u", pa.float64()),  # insulin on board
    pa.field("cob_g", pa.float64()),  # carbohydrate on board
    pa.field("reservoir_u", pa.float64()),
    pa.field("pump_battery_pct", pa.float64()),
    pa.field("uploader_battery_pct", pa.float64()),
    pa.field("enacted_rate_u_per_h", pa.float64()),  # the temp basal the loop last set
    pa.field("enacted_duration_min", pa.float64()),
    _DOCUMENT_JSON,
])

# A basal schedule: rates from a local time of day (seconds after midnight) on, ascending.
BASAL_SCHEDULE_TYPE = pa.list_(pa.struct([
    pa.field("start_s", pa.int32(), nullable=False),
    pa.field("rate_u_per_h", pa.float64(), nullable=False),
]))

LAKE_PROFILES_SCHEMA = pa.schema([
    *_DOCUMENT_KEY,
    pa.field("default_profile", pa.string(), nullable=False),  # the store entry in use
    pa.field("timezone", pa.string()),  # of the default profile's schedules (IANA name)
    pa.field("basal", BASAL_SCHEDULE_TYPE, nullable=False),  # the default profile's basal
    _DOCUMENT_JSON,
])

# Deleted documents (``deleted_documents/bucket=NNN/...``): the version that deleted each, kept
# so that an older version landing later cannot bring a deleted document back.
DELETED_DOCUMENTS_SCHEMA = pa.schema([
    pa.field("patient_id", pa.string(), nullable=False),
    pa.field("table", pa.string(), nullable=False),  # the lake table it was deleted from
    pa.field("identifier", pa.string(), nullable=False),
    pa.field("srv_modified_ms", pa.int64(), nullable=False),
])

# The document tables by name (the lake directory each lives in).
LAKE_DOCUMENT_SCHEMAS = {"treatments": LAKE_TREATMENTS_SCHEMA,
                         "devicestatus": LAKE_DEVICESTATUS_SCHEMA,
                         "profiles": LAKE_PROFILES_SCHEMA}
