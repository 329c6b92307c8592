"""/openapi.json tells the truth: schemathesis sends generated requests to every operation, and every answer
must be documented (status, content type, headers, body schema) and never a 500."""

from __future__ import annotations

import base64

import pytest
import schemathesis
from conftest import make_test_app
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from nosetrack.server.openapi import openapi_document

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


# The document is plain data, so schemathesis reads it at collection time without starting a server.
schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture(scope="module")
def app_under_test(pool):
    return make_test_app(pool)


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, app_under_test):
    case.call_and_validate(checks=CHECKS, app=app_under_test)


def test_the_document_covers_every_route(client):
    documented = set(client.get("/openapi.json").get_json()["paths"])
    rules = {
        rule.rule.replace("<", "{").replace(">", "}")
        for rule in client.application.url_map.iter_rules()
        if rule.endpoint != "static"
    }
    assert rules == documented


def test_docs_page_renders_every_path_offline(client):
    page = client.get("/docs").get_data(as_text=True)
    assert "/v2/models/{name}/infer" in page and "/image-64" in page
    assert "http://" not in page and "https://" not in page


@pytest.mark.parametrize("media_type", ["image/jpeg", "application/octet-stream"])
def test_a_real_face_is_answered_as_documented(app_under_test, face_jpeg, media_type):
    case = schema["/v1/nose"]["POST"].Case(body=face_jpeg, media_type=media_type)
    response = case.call_and_validate(checks=CHECKS, app=app_under_test)
    assert response.status_code == 200 and response.json()["detected"]


def test_an_oip_inference_is_answered_as_documented(app_under_test, face_jpeg):
    encoded = base64.b64encode(face_jpeg).decode()
    body = {"id": "a", "inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": [encoded]}]}
    case = schema["/v2/models/{name}/infer"]["POST"].Case(
        path_parameters={"name": "nosetrack-facemesh"}, body=body, media_type="application/json"
    )
    response = case.call_and_validate(checks=CHECKS, app=app_under_test)
    assert response.status_code == 200 and response.json()["outputs"][0]["name"] == "NOSE"
