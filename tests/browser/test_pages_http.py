"""The web pages over plain HTTP (no browser): who may see them, CSRF, validation, headers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.catalogue.burden_report import FIGURES
from tests.browser.conftest import Demo


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def signed_in(demo: Demo, token: str) -> Iterator[httpx.Client]:
    """A client that has signed in through the form (as a browser does)."""
    with httpx.Client(base_url=demo.base, timeout=30) as client:
        form = client.get("/sign-in")
        form_token = re.search(r'name="form_token" value="([^"]+)"', form.text)
        assert form_token is not None
        posted = client.post("/sign-in", data={"token": token, "form_token": form_token[1]})
        assert posted.status_code == 303, posted.text
        yield client


def totals_on(html: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r'data-total="(\w+)" data-value="([^"]+)"', html)}


def test_the_report_takes_an_auditors_bearer_header(demo: Demo) -> None:
    page = httpx.get(f"{demo.base}/reports/burden", headers=bearer(demo.auditor))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    api = demo.api("/v1/reports/burden", demo.auditor).json()
    assert totals_on(page.text) == {f: pytest.approx(api["totals"][f]) for f in FIGURES}


@pytest.mark.parametrize("who", ["RJ1", "CQC", "DRB-DEMO"])
def test_other_organisations_get_a_403_page(demo: Demo, who: str) -> None:
    page = httpx.get(f"{demo.base}/reports/burden", headers=bearer(demo.tokens[who]))
    assert page.status_code == 403
    assert "Only auditors can see this report" in page.text
    assert "data-total" not in page.text


def test_an_unknown_token_gets_a_401_page(demo: Demo) -> None:
    page = httpx.get(f"{demo.base}/reports/burden", headers=bearer("drb_nope"))
    assert page.status_code == 401
    assert page.headers["www-authenticate"].startswith("Bearer")


def test_without_a_session_a_browser_is_sent_to_sign_in(demo: Demo) -> None:
    for path in ("/reports/burden", "/reports/burden.csv", "/trusts", "/trusts/RJ1"):
        response = httpx.get(f"{demo.base}{path}", cookies={"drb_session": "made-up"})
        assert response.status_code == 303
        assert response.headers["location"] == "/sign-in"


def test_pages_forbid_other_origins_and_inline_script(demo: Demo) -> None:
    for path in ("/sign-in", "/reports/burden", "/trusts", "/trusts/RJ1", "/docs", "/redoc"):
        page = httpx.get(f"{demo.base}{path}", headers=bearer(demo.auditor))
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in page.text  # every script is a file from this origin
        assert not re.search(r'(src|href)="(https?:)?//', page.text)  # no CDN


def test_assets_are_served_by_the_broker(demo: Demo) -> None:
    for path, kind in (
        ("/assets/web/build/app.css", "text/css"),
        ("/assets/nhsuk/nhsuk-frontend.min.js", "text/javascript"),
        ("/assets/chart.js/chart.umd.min.js", "text/javascript"),
        ("/assets/web/sortable-tables.js", "text/javascript"),
        ("/assets/swagger-ui/swagger-ui-bundle.js", "text/javascript"),
        ("/assets/swagger-ui/swagger-ui.css", "text/css"),
        ("/assets/redoc/redoc.standalone.js", "text/javascript"),
        ("/assets/nhsuk/assets/images/nhsuk-icon-arrow-up-down.svg", "image/svg+xml"),
    ):
        response = httpx.get(f"{demo.base}{path}")
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(kind), path
    css = httpx.get(f"{demo.base}/assets/web/build/app.css").text
    assert "assets.nhs.uk" not in css  # the CDN font is compiled out
    assert "@font-face" not in css


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("month_from=2018-13", "month_from"),
        ("month_from=2019-01&month_to=2018-01", "month_to is before month_from"),
        ("month=2018-01", "“month” is not something this report can filter by"),
    ],
)
def test_a_bad_query_gets_a_422_page_with_an_error_summary(
    demo: Demo, query: str, message: str
) -> None:
    page = httpx.get(f"{demo.base}/reports/burden?{query}", headers=bearer(demo.auditor))
    assert page.status_code == 422
    assert "nhsuk-error-summary" in page.text
    assert message in page.text
    assert "<title>Error: " in page.text


def test_a_month_range_shows_the_apis_figures_for_it(demo: Demo) -> None:
    window = {"month_from": "2018-10", "month_to": "2018-12"}
    page = httpx.get(f"{demo.base}/reports/burden", params=window, headers=bearer(demo.auditor))
    assert page.status_code == 200
    api = demo.api("/v1/reports/burden", demo.auditor, **window).json()
    everything = demo.api("/v1/reports/burden", demo.auditor).json()
    assert api["totals"] != everything["totals"]
    assert totals_on(page.text) == {f: pytest.approx(api["totals"][f]) for f in FIGURES}
    assert "from October 2018 to December 2018" in page.text
    assert 'href="/reports/burden.csv?month_from=2018-10&amp;month_to=2018-12"' in page.text


def test_the_csv_is_the_apis_csv(demo: Demo) -> None:
    with signed_in(demo, demo.auditor) as client:
        csv = client.get("/reports/burden.csv", params={"month_from": "2018-11"})
    api = demo.api("/v1/reports/burden", demo.auditor, format="csv", month_from="2018-11")
    assert csv.status_code == 200
    assert csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv.content == api.content


def test_sign_in_needs_the_forms_own_token(demo: Demo) -> None:
    with httpx.Client(base_url=demo.base) as client:
        client.get("/sign-in")
        forged = client.post("/sign-in", data={"token": demo.auditor, "form_token": "guess"})
    assert forged.status_code == 400
    assert "drb_session" not in forged.cookies
    no_cookie = httpx.post(f"{demo.base}/sign-in", data={"token": demo.auditor, "form_token": "x"})
    assert no_cookie.status_code == 400


@pytest.mark.parametrize(
    ("token", "status", "message"),
    [
        ("", 422, "Enter your token"),
        ("drb_unknown", 401, "The token was not recognised"),
        ("DRB-DEMO", 403, "This token belongs to the broker&#39;s stewards: use the API"),
    ],
)
def test_a_failed_sign_in_shows_the_form_again(
    demo: Demo, token: str, status: int, message: str
) -> None:
    token = demo.tokens.get(token, token)
    with httpx.Client(base_url=demo.base) as client:
        form = client.get("/sign-in")
        form_token = re.search(r'name="form_token" value="([^"]+)"', form.text)
        assert form_token is not None
        posted = client.post("/sign-in", data={"token": token, "form_token": form_token[1]})
    assert posted.status_code == status
    assert message in posted.text
    assert 'id="token"' in posted.text
    assert "drb_session" not in posted.cookies


def test_sign_out_needs_the_sessions_form_token(demo: Demo) -> None:
    with signed_in(demo, demo.auditor) as client:
        refused = client.post("/sign-out", data={"form_token": "guess"})
        assert refused.status_code == 403
        assert client.get("/reports/burden").status_code == 200  # still signed in
        page = client.get("/reports/burden").text
        form_token = re.search(r'name="form_token" value="([^"]+)"', page)
        assert form_token is not None
        out = client.post("/sign-out", data={"form_token": form_token[1]})
        assert out.status_code == 303
        assert client.get("/reports/burden").status_code == 303


def test_revoking_the_token_ends_its_sessions(demo: Demo) -> None:
    nao = bearer(demo.auditor)  # NAO's demo token is its admin's: it issues NAO's tokens
    issued = httpx.post(f"{demo.base}/v1/organisations/NAO/tokens", headers=nao)
    assert issued.status_code == 201
    with signed_in(demo, issued.json()["token"]) as client:
        assert client.get("/reports/burden").status_code == 200
        revoked = httpx.delete(
            f"{demo.base}/v1/organisations/NAO/tokens/{issued.json()['id']}", headers=nao
        )
        assert revoked.status_code == 204
        after = client.get("/reports/burden")
        assert after.status_code == 303
        assert after.headers["location"] == "/sign-in"


def test_the_json_api_does_not_take_the_session_cookie(demo: Demo) -> None:
    with signed_in(demo, demo.auditor) as client:
        assert client.get("/reports/burden").status_code == 200
        assert client.get("/v1/reports/burden").status_code == 401


def test_what_the_page_echoes_is_escaped(demo: Demo) -> None:
    page = httpx.get(
        f"{demo.base}/reports/burden",
        params={"<script>alert(1)</script>": "1", "month_from": '"><b>x'},
        headers=bearer(demo.auditor),
    )
    assert page.status_code == 422
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert '"><b>x' not in page.text


def _web_events(demo: Demo, token_id: str, since: datetime) -> list[tuple[str, str]]:
    """(action, actor) of the audit log's sign-in events for one token, oldest first."""
    events = demo.api("/v1/audit-events", demo.auditor, since=since.isoformat()).json()
    return [
        (e["action"], e["actor"])
        for e in events
        if e["action"].startswith("web.") and e["subject_id"] == token_id
    ]


def test_signing_in_and_out_is_in_the_audit_log(demo: Demo) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    nao = bearer(demo.auditor)
    issued = httpx.post(f"{demo.base}/v1/organisations/NAO/tokens", headers=nao).json()
    with signed_in(demo, issued["token"]) as client:
        page = client.get("/reports/burden").text
        form_token = re.search(r'name="form_token" value="([^"]+)"', page)
        assert form_token is not None
        assert client.post("/sign-out", data={"form_token": form_token[1]}).status_code == 303
    signed = [("web.signed_in", "NAO"), ("web.signed_out", "NAO")]
    assert _web_events(demo, issued["id"], since) == signed
    events = demo.api("/v1/audit-events", demo.auditor, since=since.isoformat()).json()
    assert all(issued["token"] not in str(e) for e in events)  # the secret is never logged
    assert demo.api("/v1/audit-events/verify", demo.auditor).json()["valid"] is True


def test_a_refused_sign_in_with_a_real_token_is_in_the_audit_log(demo: Demo) -> None:
    steward = bearer(demo.tokens["DRB-DEMO"])
    since = datetime.now(UTC) - timedelta(seconds=1)
    issued = httpx.post(f"{demo.base}/v1/organisations/DRB-DEMO/tokens", headers=steward).json()
    with httpx.Client(base_url=demo.base) as client:
        form = client.get("/sign-in")
        form_token = re.search(r'name="form_token" value="([^"]+)"', form.text)
        assert form_token is not None
        posted = client.post(
            "/sign-in", data={"token": issued["token"], "form_token": form_token[1]}
        )
    assert posted.status_code == 403
    assert _web_events(demo, issued["id"], since) == [("web.sign_in_refused", "DRB-DEMO")]


def test_the_ledger_page_shows_a_page_of_the_apis_ledger_with_links_to_the_others(
    demo: Demo,
) -> None:
    query = {"month_from": "2018-10", "limit": "40"}
    first = httpx.get(
        f"{demo.base}/reports/burden/ledger", params=query, headers=bearer(demo.auditor)
    )
    assert first.status_code == 200
    api = demo.api("/v1/reports/burden/ledger", demo.auditor, **query)
    total = re.search(r'data-total-entries="(\d+)"', first.text)
    assert total is not None
    assert total[1] == api.headers["x-total-count"]
    assert int(total[1]) > 40
    assert first.text.count("data-entry=") == len(api.json()) == 40
    assert 'data-page="prev"' not in first.text
    following = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert following is not None
    second = httpx.get(
        f"{demo.base}{following[1].replace('&amp;', '&')}", headers=bearer(demo.auditor)
    )
    assert second.status_code == 200
    assert 'rel="prev"' in second.text
    assert "month_from=2018-10" in following[1]
    # The report links to the ledger of the same months.
    report = httpx.get(
        f"{demo.base}/reports/burden",
        params={"month_from": "2018-10"},
        headers=bearer(demo.auditor),
    )
    assert 'href="/reports/burden/ledger?month_from=2018-10"' in report.text
    for bad in ("limit=0", "cursor=nonsense", "colour=blue"):
        page = httpx.get(f"{demo.base}/reports/burden/ledger?{bad}", headers=bearer(demo.auditor))
        assert page.status_code == 422, bad
        assert "nhsuk-error-summary" in page.text
    refused = httpx.get(f"{demo.base}/reports/burden/ledger", headers=bearer(demo.tokens["RJ1"]))
    assert refused.status_code == 403
