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
