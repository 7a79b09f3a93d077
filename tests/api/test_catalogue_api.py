"""The catalogue over HTTP: items, datasets, templates and Table Schemas."""

from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient

import schemas

Headers = dict[str, str]
REFERENCE = {"ae_monthly", "ecds_attendance", "beds_monthly", "rtt_monthly"}


def test_the_four_reference_datasets_are_listed(client: TestClient, admin: Headers) -> None:
    listed = client.get("/v1/datasets", headers=admin)
    assert listed.status_code == 200
    by_code = {d["code"]: d for d in listed.json()}
    assert set(by_code) == REFERENCE
    assert by_code["ae_monthly"]["items"] == ["ae_admissions", "ae_attendances", "ae_breaches"]
    assert by_code["ecds_attendance"]["items"] == []
    assert all(d["period_type"] == "month" and d["version"] >= 1 for d in by_code.values())


def test_items_name_their_datasets(client: TestClient, admin: Headers) -> None:
    items = {i["code"]: i for i in client.get("/v1/items", headers=admin).json()}
    assert set(items) >= {
        "ae_attendances",
        "ae_breaches",
        "ae_admissions",
        "beds_ga_available",
        "beds_ga_occupied",
        "beds_cc_available",
        "beds_cc_occupied",
        "rtt_over_18_weeks",
        "rtt_over_52_weeks",
    }
    attendances = items["ae_attendances"]
    assert attendances["primary_dataset"] == "ae_monthly"
    assert attendances["datasets"] == ["ae_monthly"]
    assert attendances["derivable_from"] == ["ecds_attendance"]
    assert attendances["disaggregation"] == ["department_type"]
    assert attendances["aggregation"] == "sum"
    assert items["beds_ga_occupied"]["aggregation"] == "mean"
    assert items["rtt_over_52_weeks"]["aggregation"] == "last"
    assert all(i["name"] and i["definition"] and i["unit"] for i in items.values())


def test_dataset_definition_has_columns_key_items_burden(
    client: TestClient, admin: Headers
) -> None:
    for code in REFERENCE:
        body = client.get(f"/v1/datasets/{code}", headers=admin).json()
        assert body["code"] == code
        assert body["key"], code
        assert {"base_minutes", "minutes_per_item"} <= set(body["burden"])
        for column in body["columns"]:
            assert {"name", "type", "required", "checks"} <= set(column)
        assert body["versions"] == [body["version"]]
    ae = client.get("/v1/datasets/ae_monthly", headers=admin).json()
    assert ae["key"] == ["period", "org_code", "department_type"]
    names = [c["name"] for c in ae["columns"]]
    assert names == [
        "period",
        "org_code",
        "department_type",
        "attendances",
        "breaches",
        "admissions",
    ]


def test_template_csv_is_the_header_row(client: TestClient, admin: Headers) -> None:
    for code in REFERENCE:
        response = client.get(f"/v1/datasets/{code}/template.csv", headers=admin)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(response.text)))
        assert rows == [[c.name for c in schemas.DATASETS[code].columns]]


def test_table_schema_is_frictionless(client: TestClient, admin: Headers) -> None:
    body = client.get("/v1/datasets/rtt_monthly/table-schema.json", headers=admin).json()
    fields = {f["name"]: f for f in body["fields"]}
    assert body["primaryKey"] == ["period", "org_code"]
    assert fields["waits_over_18_weeks"]["type"] == "integer"
    assert fields["waits_over_18_weeks"]["constraints"]["minimum"] == 0
    assert fields["waits_over_18_weeks"]["constraints"]["required"] is True


def test_unknown_dataset_is_404_naming_the_known_ones(client: TestClient, admin: Headers) -> None:
    for path in ("/v1/datasets/ae_weekly", "/v1/datasets/ae_weekly/template.csv"):
        response = client.get(path, headers=admin)
        assert response.status_code == 404
        assert "ae_monthly" in response.json()["detail"]
    assert client.get("/v1/datasets/ae_monthly?version=99", headers=admin).status_code == 404
