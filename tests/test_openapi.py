"""The ingest's OpenAPI document, fuzzed against a real server: no 5xx, documented answers.

Schemathesis generates requests from ``/openapi.json`` for every operation (JSON and Arrow
IPC bodies, path and query parameters), sends them with the admin credential, and checks
that the server never answers 5xx and only answers with documented status codes, content
types and response schemas. The alert stream (an endless Server-Sent Events response) is
left out.
"""

from __future__ import annotations

import hashlib
import time

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
import requests

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cgm_ray.schema import ARROW_STREAM, EARLIEST_TS_MS  # noqa: E402
from tests.ingest_server import ADMIN, ingest_server  # noqa: E402

MAX_EXAMPLES = 25
STARTED_MS = int(time.time() * 1000)  # a fixed bound: strategies must not read the clock
# What the server checks but JSON Schema cannot state (the descriptions say it): a request
# the schema calls valid may be refused only for these.
DESCRIBED_ONLY = ("all columns must have the same length", "in the future", "too old",
                  "names no profile of store", "cannot be combined", "cannot be modified")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]

_ids = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=64)


@st.composite
def arrow_batches(draw) -> bytes:
    """Arrow IPC streams of valid readings (the JSON form's limits, as Arrow columns)."""
    n = draw(st.integers(1, 5))
    patients = draw(st.lists(_ids, min_size=n, max_size=n))
    columns = {
        "patient_id": pa.array(patients, pa.string()),
        # one sensor per patient: a sensor of two patients is refused (409), rightly
        "sensor_id": pa.array([f"arrow-{hashlib.sha1(p.encode()).hexdigest()[:16]}"
                               for p in patients], pa.string()),
        "ts_ms": pa.array(draw(st.lists(st.integers(EARLIEST_TS_MS, STARTED_MS), min_size=n,
                                        max_size=n)), pa.int64()),
        "glucose_mgdl": pa.array(draw(st.lists(st.floats(20, 600), min_size=n, max_size=n)),
                                 pa.float32()),
    }
    if draw(st.booleans()):
        columns["range_flag"] = pa.array(draw(st.lists(st.sampled_from([-1, 0, 1]), min_size=n,
                                                       max_size=n)), pa.int8())
    table = pa.table(columns)
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as out:
        out.write_table(table)
    return sink.getvalue().to_pybytes()


schemathesis.openapi.media_type(ARROW_STREAM, arrow_batches())


def _document() -> dict:
    from serve_apps.ingress import api

    return api.openapi()


schema = schemathesis.openapi.from_dict(_document()).exclude(path_regex=r"/stream$")
schema.config.generation.update(max_examples=MAX_EXAMPLES)


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    with ingest_server(tmp_path_factory.mktemp("openapi"), partitions=2,
                       rate_limit_per_s=100_000.0) as base:
        yield base


def test_the_server_serves_the_document_under_test(url):
    served = requests.get(f"{url}/openapi.json", timeout=30).json()
    assert served == _document()


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented_and_never_5xx(case, url):
    response = case.call_and_validate(base_url=url, headers=ADMIN, checks=CHECKS, timeout=30)
    if case.meta.generation.mode is GenerationMode.POSITIVE and response.status_code in (400, 422):
        reason = response.json().get("description", response.text)
        assert any(limit in reason for limit in DESCRIBED_ONLY), (
            f"{case.operation.label}: a request valid by the schema was refused: {reason}")


@given(body=arrow_batches())
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_valid_arrow_batches_are_stored(url, body):
    rows = ipc.open_stream(body).read_all().num_rows
    r = requests.post(f"{url}/api/v2/readings", data=body, timeout=30,
                      headers={**ADMIN, "content-type": ARROW_STREAM})
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] + r.json()["duplicates"] == rows


def test_every_body_reading_operation_documents_its_body():
    document = _document()
    bodies = {(method.upper(), path): op.get("requestBody")
              for path, ops in document["paths"].items() for method, op in ops.items()}
    for key in [("POST", "/api/v2/readings"), ("POST", "/api/v1/entries"),
                ("POST", "/api/v2/sensors"), ("PUT", "/api/v2/patients/{patient_id}/settings"),
                ("POST", "/api/v2/patients/{patient_id}/alerts/snooze")]:
        assert bodies[key] and bodies[key]["required"], key
    readings = bodies[("POST", "/api/v2/readings")]["content"]
    assert readings[ARROW_STREAM]["schema"] == {**readings[ARROW_STREAM]["schema"],
                                                "type": "string", "format": "binary"}
    items = readings["application/json"]["schema"]["properties"]["glucose_mgdl"]["items"]
    assert (items["minimum"], items["maximum"]) == (20, 600)
