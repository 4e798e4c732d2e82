"""Nightscout documents without a server: normalisation, queries, the store and its log."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cgm_ray.schema import DOCUMENT_COLLECTIONS
from serve_apps.config import IngestConfig
from serve_apps.nightscout.documents import identifier_for, normalise, parse_time
from serve_apps.nightscout.query import Filter, matches, time_bounds, v1_filters, v3_filters
from serve_apps.nightscout.store import DocumentStore
from serve_apps.partition_core import PartitionCore
from serve_apps.validation import InvalidBody

NOW_MS = 1_790_000_000_000


def test_treatments_are_normalised_as_nightscout_stores_them():
    doc = normalise("treatments", {"eventType": "Meal Bolus", "insulin": "2.5", "carbs": "0",
                                   "created_at": "2026-09-21T10:00:00+0200", "notes": "",
                                   "glucose": "140", "custom": {"a": 1}},
                    NOW_MS)
    f = doc.fields
    assert f["created_at"] == "2026-09-21T08:00:00.000Z" and f["utcOffset"] == 120
    assert f["insulin"] == 2.5 and f["glucose"] == 140
    assert "carbs" not in f and "notes" not in f  # empty and zero values dropped, as Nightscout
    assert f["custom"] == {"a": 1}  # unknown fields kept as given
    assert doc.date_ms == parse_time("2026-09-21T08:00:00Z", "t")[0]
    assert doc.event_key == (doc.date_ms, "Meal Bolus")
    # API v3's identifier: UUIDv5 of "device_date_eventType" in Nightscout's namespace
    assert doc.identifier == str(uuid.uuid5(uuid.UUID(bytes=b"NightscoutRocks!"),
                                            f"undefined_{doc.date_ms}_Meal Bolus"))
    assert len(f["_id"]) == 24 and int(f["_id"], 16) >= 0


def test_event_time_overrides_created_at_and_loop_uuid_ids_become_identifiers():
    doc = normalise("treatments", {"eventType": "Temp Basal", "created_at": "2026-01-01T00:00:00Z",
                                   "eventTime": "2026-01-01T01:00:00Z", "absolute": 0,
                                   "duration": "30", "_id": "A1B2C3D4-0000-4000-8000-000000000001"},
                    NOW_MS)
    assert doc.fields["created_at"] == "2026-01-01T01:00:00.000Z"
    assert doc.fields["absolute"] == 0 and doc.fields["duration"] == 30  # a zero temp is a dose
    assert doc.identifier == "A1B2C3D4-0000-4000-8000-000000000001"
    assert doc.fields["_id"] != doc.identifier and "eventTime" not in doc.fields


@pytest.mark.parametrize(("collection", "record", "field"), [
    ("treatments", {"insulin": 1}, "eventType"),
    ("treatments", {"eventType": "Correction Bolus", "insulin": "abc"}, "insulin"),
    ("treatments", {"eventType": "Correction Bolus", "insulin": -1}, "insulin"),
    ("treatments", {"eventType": "Note", "created_at": "yesterday"}, "created_at"),
    ("treatments", {"eventType": "Note", "created_at": True}, "created_at"),
    ("treatments", {"eventType": "Temp Basal", "duration": 1e9}, "duration"),
    ("treatments", [1, 2], "treatments"),
    ("devicestatus", {"device": 7}, "device"),
    ("devicestatus", {"device": "x", "pump": {"reservoir": "lots"}}, "pump.reservoir"),
    ("profile", {"defaultProfile": "A"}, "store"),
    ("profile", {"defaultProfile": "B", "store": {"A": {}}}, "defaultProfile"),
    ("profile", {"store": {"A": {"basal": [{"time": "25:00", "value": 1}]}}},
     "store.A.basal[0].time"),
    ("profile", {"store": {"A": {"sens": [{"time": "00:00"}]}}}, "store.A.sens[0].value"),
    ("entries", {"type": "mbg", "date": NOW_MS}, "mbg"),
    ("entries", {"type": "sgv", "sgv": 100, "date": NOW_MS}, "type"),
    ("entries", {"type": "cal"}, "date"),
])
def test_bad_fields_are_named(collection, record, field):
    with pytest.raises(InvalidBody) as err:
        normalise(collection, record, NOW_MS)
    assert err.value.field == field


def test_profiles_get_seconds_and_single_values_become_schedules():
    doc = normalise("profile", {"store": {"Default": {
        "dia": "5", "carbratio": 10, "basal": [{"time": "0:00", "value": "0.8"},
                                               {"time": "06:30", "value": 1.1}]}}}, NOW_MS)
    store = doc.fields["store"]["Default"]
    assert doc.fields["defaultProfile"] == "Default" and store["dia"] == 5
    assert store["carbratio"] == [{"time": "00:00", "value": 10, "timeAsSeconds": 0}]
    assert [b["timeAsSeconds"] for b in store["basal"]] == [0, 23_400]
    assert doc.fields["units"] == "mg/dl"


def test_v1_and_v3_queries_parse_to_the_same_filters():
    v1 = v1_filters({"find[created_at][$gte]": "2026-01-01", "find[eventType]": "Temp Basal",
                     "count": "5"})
    v3 = v3_filters({"created_at$gte": "2026-01-01", "eventType": "Temp Basal", "limit": "5"},
                    {"limit"})
    assert v1 == v3 == [Filter("created_at", "gte", "2026-01-01"),
                        Filter("eventType", "eq", "Temp Basal")]
    with pytest.raises(InvalidBody):
        v1_filters({"find[created_at][$gte]": "not a time"})
    with pytest.raises(InvalidBody):
        v1_filters({"find[eventType][$where]": "x"})
    with pytest.raises(InvalidBody):
        v1_filters({"find[notes]": "/([/"})


def test_filters_compare_times_numbers_regexes_and_nested_fields():
    doc = normalise("treatments", {"eventType": "Correction Bolus", "insulin": 1.5,
                                   "created_at": "2026-01-01T12:00:00Z",
                                   "boluscalc": {"bg": 180}}, NOW_MS).fields
    ok = [Filter("created_at", "gte", "2026-01-01T11:00:00+00:00"),
          Filter("created_at", "lt", str(doc["date"] + 1)), Filter("insulin", "gt", "1"),
          Filter("eventType", "eq", "/bolus/i"), Filter("boluscalc.bg", "eq", "180"),
          Filter("eventType", "in", "Meal Bolus|Correction Bolus"),
          Filter("carbs", "exists", "false")]
    assert all(matches(doc, [f]) for f in ok)
    assert not matches(doc, [Filter("insulin", "gt", "2")])
    assert not matches(doc, [Filter("eventType", "ne", "Correction Bolus")])
    assert not matches(doc, [Filter("carbs", "gte", "0")])


def _treatment(minute: int, event: str = "Correction Bolus", **fields) -> object:
    return normalise("treatments", {"eventType": event, "created_at": NOW_MS + minute * 60_000,
                                    "insulin": 1, **fields}, NOW_MS)


def test_store_upserts_on_identifier_id_or_time_and_event_type():
    store = DocumentStore()
    (first,), _ = store.upsert("p", [_treatment(0)], NOW_MS)
    (again,), _ = store.upsert("p", [_treatment(0, insulin=2, device="pump")], NOW_MS)
    assert again.identifier == first.identifier  # same created_at + eventType: replaced
    assert again.document["srvCreated"] == first.document["srvCreated"]
    assert again.srv_modified_ms > first.srv_modified_ms  # a strictly increasing clock
    (by_id,), _ = store.upsert("p", [normalise("treatments", {
        "_id": first.document["_id"], "eventType": "Note", "notes": "moved"}, NOW_MS)], NOW_MS)
    assert by_id.identifier == first.identifier
    assert [d["notes"] for d in store.find("p", "treatments", [], 10)] == ["moved"]
    store.upsert("p", [_treatment(5), _treatment(10, "Meal Bolus")], NOW_MS)
    found = store.find("p", "treatments", [Filter("eventType", "eq", "Correction Bolus")], 10)
    assert [d["date"] for d in found] == [NOW_MS + 5 * 60_000]
    assert store.find("p", "treatments", [], 1, skip=1)[0]["date"] == NOW_MS + 5 * 60_000
    assert store.find("q", "treatments", [], 10) == []  # patients are separate


def test_deletes_are_soft_reported_by_history_and_undone_on_failed_logging():
    store = DocumentStore()
    versions, _ = store.upsert("p", [_treatment(0), _treatment(5)], NOW_MS)
    since = versions[-1].srv_modified_ms
    deleted, _ = store.delete("p", "treatments", [versions[0].document["_id"]], NOW_MS)
    assert deleted[0].is_valid is False
    assert len(store.find("p", "treatments", [], 10)) == 1
    history = store.history("p", "treatments", since, 10)
    assert [(d["identifier"], d["isValid"]) for d in history] == [(versions[0].identifier, False)]
    assert store.delete("p", "treatments", ["nope"], NOW_MS)[0] == []
    _, undo = store.upsert("p", [_treatment(0, insulin=3), _treatment(20)], NOW_MS)
    store.rollback(undo)  # the log append failed: the store is as before
    assert [d["insulin"] for d in store.find("p", "treatments", [], 10)] == [1]
    assert store.get("p", "treatments", versions[0].identifier)["isValid"] is False


def test_the_oldest_documents_are_evicted_beyond_the_cap():
    store = DocumentStore(max_per_shelf=3)
    store.upsert("p", [_treatment(m) for m in range(5)], NOW_MS)
    store.evict()
    assert [d["date"] for d in store.find("p", "treatments", [], 10)] == [
        NOW_MS + m * 60_000 for m in (4, 3, 2)]


def test_partition_replays_documents_from_its_log(tmp_path):
    config = IngestConfig(data_dir=str(tmp_path / "ingest"), landing_dir=str(tmp_path / "landing"),
                          documents_landing_dir=str(tmp_path / "documents"))

    async def write() -> str:
        core = PartitionCore(0, config)
        stored = await core.put_documents("p", [_treatment(0), _treatment(5)])
        await core.delete_documents("p", "treatments", [stored[0]["identifier"]])
        await core.put_documents("p", [normalise("devicestatus", {
            "device": "loop://iPhone", "created_at": NOW_MS, "loop": {"iob": {"iob": 1.5}}},
            NOW_MS)])
        core.close()
        return stored[1]["identifier"]

    kept = asyncio.run(write())  # the open segment is left as a crash would leave it
    core = PartitionCore(0, config)
    assert core.replayed_documents == 4
    assert [d["identifier"] for d in core.documents.find("p", "treatments", [], 10)] == [kept]
    assert core.documents.find("p", "devicestatus", [], 1)[0]["loop"]["iob"]["iob"] == 1.5
    (again,), _ = core.documents.upsert("p", [_treatment(5)], NOW_MS)
    assert again.identifier == kept and again.srv_modified_ms > core.documents.history(
        "p", "devicestatus", 0, 1)[0]["srvModified"]


def test_identifier_matches_nightscout_for_device_statuses():
    doc = normalise("devicestatus", {"device": "openaps://rig", "created_at": NOW_MS}, NOW_MS)
    assert doc.identifier == identifier_for("openaps://rig", NOW_MS)


_json = st.recursive(st.none() | st.booleans() | st.integers()
                     | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
_fields = st.sampled_from(["eventType", "created_at", "eventTime", "date", "insulin", "carbs",
                           "duration", "absolute", "_id", "identifier", "device", "store",
                           "defaultProfile", "startDate", "pump", "uploader", "type", "mbg",
                           "dateString", "notes", "timestamp"])


@given(collection=st.sampled_from(DOCUMENT_COLLECTIONS),
       record=st.dictionaries(_fields, _json, max_size=8) | _json)
@settings(max_examples=400, deadline=None)
def test_any_json_is_normalised_or_refused_with_a_field(collection, record):
    try:
        doc = normalise(collection, record, NOW_MS)
    except InvalidBody as exc:
        assert exc.field
        return
    json.dumps(doc.fields, allow_nan=False)  # what is stored can be answered
    assert 0 <= doc.date_ms and doc.fields["identifier"] == doc.identifier


def test_time_bounds_read_epoch_ms_and_iso_dates():
    filters = v1_filters({"find[date][$gt]": "1000", "find[dateString][$lte]": "1970-01-01T00:00:02Z",
                          "find[type]": "sgv"})
    assert time_bounds(filters, ("date", "dateString")) == (1001, 2000)
    assert time_bounds([], ("date",)) == (None, None)
