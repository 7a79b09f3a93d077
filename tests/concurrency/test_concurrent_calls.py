"""Calls made at once leave the audit chain and the burden figures exactly as the same calls
made one after another would, on SQLite (the embedded default) and on PostgreSQL.

One real `drb serve` (embedded worker) per backend, shared by the tests (starting one is most of
their time), each test in months of its own. A test sends its calls from many threads released
together, each thread with its own HTTP client; then ``GET /v1/audit-events/verify`` must find
one unbroken chain with one event for each call, and the burden report must show what the same
requests registered one after another show (in other months of the same broker)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import httpx
import pytest

from tests.api_calls import YEAR, ae_csv
from tests.databases import BACKENDS, migrated_copy
from tests.processes import drb_env, serving

ADMIN = "drb_concurrency-admin-token-0123456789abcdef"
# Each test's months, apart so that one test's requests and returns never meet another's.
READS = (f"{YEAR}-01", f"{YEAR}-02")  # a chart needs two months
SERIAL, PARALLEL = f"{YEAR}-03", f"{YEAR}-04"
UPLOADS = f"{YEAR}-05"
ORGANISATIONS = {
    "RJ1": ("trust", "Y56"),
    "RJZ": ("trust", "Y56"),
    "R0A": ("trust", "Y62"),
    "CQC": ("oversight_body", None),
    "NHSE": ("oversight_body", None),
    "NAO": ("auditor", None),
}
T = TypeVar("T")


@dataclass(frozen=True)
class Broker:
    """A served broker and a token of each organisation."""

    base: str
    tokens: dict[str, str]

    def client(self, code: str) -> httpx.Client:
        """A client of its own (its own connections), as ``code``."""
        return httpx.Client(
            base_url=self.base,
            headers={"Authorization": f"Bearer {self.tokens[code]}"},
            timeout=60,
        )

    def call(self, code: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self.client(code) as client:
            return client.request(method, path, **kwargs)

    def verify(self) -> dict[str, Any]:
        response = self.call("NAO", "GET", "/v1/audit-events/verify")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture(scope="module", params=BACKENDS)
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    """`drb serve` over a copy of the migrated database, with the organisations registered."""
    root = tmp_path_factory.mktemp(f"concurrency-{request.param}")
    with migrated_copy(request, request.param, root) as url:
        env = drb_env(
            data_dir=str(root / "var"), database_url=url, admin_token=ADMIN, reminders="false"
        )
        with serving(env, root / "serve.log") as (base, _server):
            tokens = {"ADMIN": ADMIN}
            admin = {"Authorization": f"Bearer {ADMIN}"}
            with httpx.Client(base_url=base, headers=admin, timeout=30) as client:
                for code, (kind, region) in ORGANISATIONS.items():
                    body = {"code": code, "name": f"{code} test", "kind": kind, "region": region}
                    assert client.post("/v1/organisations", json=body).status_code == 201
                    issued = client.post(f"/v1/organisations/{code}/tokens")
                    assert issued.status_code == 201, issued.text
                    tokens[code] = issued.json()["token"]
            yield Broker(base=base, tokens=tokens)


def at_once(calls: list[Callable[[], T]]) -> list[T]:
    """Run every call in a thread of its own, released together; their results in order."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        start.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def request_body(month: str, trusts: list[str], items: list[str]) -> dict[str, Any]:
    return {
        "title": "concurrency",
        "purpose": "p",
        "legal_basis": "l",
        "items": items,
        "organisations": trusts,
        "period_start": month,
        "period_end": month,
        "due_days": 20,
    }


def register(broker: Broker, body_code: str, body: dict[str, Any]) -> httpx.Response:
    return broker.call(body_code, "POST", "/v1/requests", json=body)


def accepted(broker: Broker, trust: str, month: str) -> None:
    """Send the trust's A&E return of the month and wait until it is accepted."""
    sent = broker.call(
        trust,
        "POST",
        "/v1/submissions",
        files={"file": ("return.csv", ae_csv(trust, month), "text/csv")},
        data={"dataset": "ae_monthly", "period": month},
    )
    assert sent.status_code == 202, sent.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = broker.call(trust, "GET", f"/v1/submissions/{sent.json()['id']}").json()["status"]
        if status in ("accepted", "rejected"):
            assert status == "accepted"
            return
        time.sleep(0.1)
    raise AssertionError(f"{trust}'s return of {month} was not validated in time")


def extract_of(broker: Broker, body_code: str, request_id: str) -> str:
    """The id of the request's extract, once built."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = broker.call(body_code, "GET", "/v1/extracts", params={"request_id": request_id})
        if found.status_code == 200 and found.json():
            return str(found.json()[0]["id"])
        time.sleep(0.1)
    raise AssertionError("the extract was not built in time")


def actions(broker: Broker) -> dict[str, int]:
    """How many events of each action the log holds."""
    listed = broker.call("NAO", "GET", "/v1/audit-events", params={"limit": 10_000})
    assert listed.status_code == 200, listed.text
    counts: dict[str, int] = {}
    for event in listed.json():
        counts[event["action"]] = counts.get(event["action"], 0) + 1
    return counts


def assert_one_chain(broker: Broker, before: dict[str, int], **more: int) -> None:
    """The chain is unbroken, and holds ``more`` events of each action than ``before``."""
    check = broker.verify()
    assert check["valid"] is True, check
    after = actions(broker)
    assert {a: after.get(a, 0) - before.get(a, 0) for a in more} == more


def test_parallel_audited_reads_append_one_chain(broker: Broker) -> None:
    """Sixteen extract downloads and sixteen indicator reads at once: one event each, one chain.

    Before, on SQLite, each read the head outside any transaction and several linked their
    event to the same one: the chain forked and verify reported tampering."""
    body = request_body(READS[0], ["RJ1", "R0A"], ["ae_attendances"]) | {"period_end": READS[1]}
    request = register(broker, "CQC", body)
    assert request.status_code == 201, request.text
    for trust in ("RJ1", "R0A"):
        for month in READS:
            accepted(broker, trust, month)
    extract_id = extract_of(broker, "CQC", request.json()["id"])
    assert broker.verify()["valid"] is True
    before = actions(broker)

    def download() -> int:
        return broker.call("CQC", "GET", f"/v1/extracts/{extract_id}/download").status_code

    def chart() -> int:
        params = {"org_code": "RJ1", "period_start": READS[0], "period_end": READS[1]}
        path = "/v1/indicators/ae_attendances/spc"
        return broker.call("RJ1", "GET", path, params=params).status_code

    codes = at_once([download] * 16 + [chart] * 16)
    assert codes == [200] * 32
    assert_one_chain(broker, before, **{"extract.downloaded": 16, "indicator.read": 16})


def burden(broker: Broker, month: str) -> dict[str, Any]:
    """The burden report of one month: totals, by trust and by dataset (by body and by month
    depend on which request came first, or name the month)."""
    params = {"month_from": month, "month_to": month}
    report = broker.call("NAO", "GET", "/v1/reports/burden", params=params)
    assert report.status_code == 200, report.text
    body = report.json()
    return {name: body[name] for name in ("totals", "by_trust", "by_dataset")}


# Four requests for the same new cells, and two that overlap them: (body, trusts, items).
REQUESTS = [
    *[("CQC", ["RJ1", "R0A"], ["ae_attendances", "ae_breaches"])] * 4,
    ("NHSE", ["R0A", "RJZ"], ["ae_attendances", "ae_admissions"]),
    ("NHSE", ["RJ1"], ["ae_breaches", "beds_ga_available"]),
]


def test_parallel_registrations_count_the_burden_once(broker: Broker) -> None:
    """Overlapping requests registered at once, then half of them withdrawn at once, impose the
    burden the same requests made one after another impose.

    Before, on SQLite, each registration read the coverage before any other's commit: all four
    identical requests imposed the same cells, and the report counted them four times."""

    def made(month: str, answers: list[httpx.Response]) -> list[dict[str, Any]]:
        assert [a.status_code for a in answers] == [201] * len(REQUESTS), [a.text for a in answers]
        return [a.json() for a in answers]

    serial = made(SERIAL, [register(broker, b, request_body(SERIAL, t, i)) for b, t, i in REQUESTS])
    parallel = made(
        PARALLEL,
        at_once(
            [partial(register, broker, b, request_body(PARALLEL, t, i)) for b, t, i in REQUESTS]
        ),
    )
    imposed = [sum(r["burden"]["returns_imposed"] for r in made) for made in (serial, parallel)]
    assert imposed[0] == imposed[1]
    assert burden(broker, PARALLEL) == burden(broker, SERIAL)

    def withdraw(request: dict[str, Any]) -> httpx.Response:
        body_code = REQUESTS[0][0]
        return broker.call(body_code, "POST", f"/v1/requests/{request['id']}/withdraw")

    for request in serial[:4]:
        assert withdraw(request).status_code == 200
    answers = at_once([partial(withdraw, r) for r in parallel[:4]])
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    assert burden(broker, PARALLEL) == burden(broker, SERIAL)
    assert broker.verify()["valid"] is True


def test_identical_uploads_at_once_give_the_first_submission(broker: Broker) -> None:
    """Twelve uploads of one file at once: one 202 and eleven 200s, all naming one submission;
    six other files sent at once with one Idempotency-Key: one 202 and five 409s.

    Before, every copy found no earlier submission and inserted one: all but the first failed
    on the unique key with a 500."""
    content = ae_csv("RJ1", UPLOADS)
    before = actions(broker)

    def send(content: bytes, key: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return broker.call(
            "RJ1",
            "POST",
            "/v1/submissions",
            headers=headers,
            files={"file": ("return.csv", content, "text/csv")},
            data={"dataset": "ae_monthly", "period": UPLOADS},
        )

    answers = at_once([partial(send, content)] * 12)
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 11 + [202], [a.text for a in answers if a.status_code >= 300]
    assert len({a.json()["id"] for a in answers}) == 1

    others = [ae_csv("RJ1", UPLOADS, attendances=1000 + n) for n in range(6)]
    keyed = at_once([partial(send, c, key="once") for c in others])
    codes = sorted(a.status_code for a in keyed)
    assert codes == [202] + [409] * 5, [a.text for a in keyed if a.status_code not in (202, 409)]
    assert_one_chain(broker, before, **{"submission.received": 2})


def test_a_first_admin_token_asked_for_at_once_is_issued_once(broker: Broker) -> None:
    """Eight stewards' calls at once for a new organisation's first admin token: one 201, and
    seven 403s (it has an admin now, who issues the rest). Before, on SQLite, each call read
    "no admin yet" outside any transaction and several were issued."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=broker.base, headers=admin, timeout=30) as client:
        body = {"code": "RX1", "name": "RX1 test", "kind": "trust", "region": "Y56"}
        assert client.post("/v1/organisations", json=body).status_code == 201
    before = actions(broker)

    def issue() -> httpx.Response:
        return broker.call("ADMIN", "POST", "/v1/organisations/RX1/tokens")

    codes = sorted(answer.status_code for answer in at_once([issue] * 8))
    assert codes == [201] + [403] * 7
    assert_one_chain(broker, before, **{"token.issued": 1})


def test_one_organisation_registered_at_once_is_one_201_and_409s(broker: Broker) -> None:
    """Eight registrations of one new code at once: one 201 and seven 409s, never a 500 (the
    others pass the "is the code new" check before the first commits, and the unique key keeps
    them out), and one event in the chain."""
    before = actions(broker)
    body = {"code": "RX2", "name": "RX2 test", "kind": "trust", "region": "Y56"}

    def register_it() -> httpx.Response:
        return broker.call("ADMIN", "POST", "/v1/organisations", json=body)

    answers = at_once([register_it] * 8)
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [201] + [409] * 7, [a.text for a in answers if a.status_code >= 500]
    assert_one_chain(broker, before, **{"organisation.registered": 1})
