"""How the page labels and formats the report's figures (no server needed)."""

from __future__ import annotations

from services.broker.web import report_view as view
from services.broker.web.sessions import SessionStore


def test_names_and_months_read_well() -> None:
    assert view.readable_name("GUY'S AND ST THOMAS' NHS FOUNDATION TRUST") == (
        "Guy's and St Thomas' NHS Foundation Trust"
    )
    assert view.readable_name("Care Quality Commission") == "Care Quality Commission"
    assert view.month_name("2018-10") == "October 2018"
    assert view.short_month("2019-03") == "Mar 2019"


def test_figures_are_formatted_without_changing_them() -> None:
    assert view.hours(3237.0) == "3,237"
    assert view.hours(64.33) == "64.33"
    assert view.hours(414.5) == "414.5"
    assert view.count(2664) == "2,664"
    assert view.gbp(9362.08) == "£9,362.08"
    assert view.gbp(0.0) == "£0.00"
    assert view.percent(0.1667) == "16.7%"
    assert view.percent(None) == view.NONE


def test_tables_sort_by_label_and_keep_raw_values_for_sorting() -> None:
    rows = [
        {"body": "UKHSA", "hours_avoided": 210.0},
        {"body": "CQC", "hours_avoided": 0.0},
    ]
    table = view.table(
        id="t",
        caption="c",
        kind="body",
        key_field="body",
        key_header="Oversight body",
        rows=rows,
        columns=(view.Column("hours_avoided", "Hours avoided", "hours"),),
        names={"CQC": "Care Quality Commission", "UKHSA": "UK Health Security Agency"},
    )
    assert [r.key for r in table.rows] == ["CQC", "UKHSA"]
    assert table.rows[1].label.text == "UK Health Security Agency (UKHSA)"
    assert table.rows[1].cells[0] == view.Cell("210", "210.0")


def test_chart_summaries_name_the_figures() -> None:
    by_month = [
        {"period": "2018-09", "hours_avoided": 0.0},
        {"period": "2018-10", "hours_avoided": 60.67},
    ]
    chart = view.month_chart(by_month)
    assert chart.labels == ("Sep 2018", "Oct 2018")
    assert "from September 2018 to October 2018" in chart.summary
    assert "the most (60.67 hours) in October 2018" in chart.summary
    assert "1 of the 2 months" in chart.summary
    body = view.body_chart(
        [{"body": "CQC", "hours_avoided": 0.0}, {"body": "NHSE", "hours_avoided": 154.0}],
        {"CQC": "Care Quality Commission", "NHSE": "NHS England"},
    )
    assert body.labels == ("NHS England", "Care Quality Commission")
    assert "NHS England, 154 and Care Quality Commission, 0" in body.summary
    assert view.month_chart([]).summary == "No months to show."


def test_sessions_expire_and_end_on_sign_out() -> None:
    now = [1000.0]
    store = SessionStore(lifetime=60, clock=lambda: now[0])
    first = store.create(org_code="NAO", kind="auditor", token_id="t1")
    second = store.create(org_code="NAO", kind="auditor", token_id="t1")
    assert first.id != second.id
    assert first.csrf_token != second.csrf_token
    assert store.get(first.id) == first
    store.delete(first.id)
    assert store.get(first.id) is None
    now[0] += 61
    assert store.get(second.id) is None
    assert store.get(None) is None
