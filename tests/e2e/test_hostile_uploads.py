"""The hostile-files corpus sent to real `drb serve` and `drb worker` processes: none ends one.

Each file of tests/hostile_files.py is uploaded through the real upload path, once to an embedded
broker (`drb serve` alone on SQLite: the API and its worker in one process, which a reader's
abort used to end) and once to a distributed one (`drb serve` and `drb worker` on PostgreSQL
and Redis). Each must be rejected with one plain file-level error naming the problem, nothing of
it may be stored (no upload left, no file in the store, no cell held), and every process must
still be the same one, answering.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.databases import fresh_postgres
from tests.hostile_files import CASES, PERIOD, Case
from tests.processes import drb_env, free_port, healthy, run_drb, start_drb, stop, wait_until

ADMIN = "drb_e2e-admin-token-0123456789abcdef"
TRUST, BODY = "RJ1", "NHSE"


@dataclass
class Broker:
    """Running `drb` processes, their data dir, and a trust's and a body's tokens."""

    base: str
    processes: list[subprocess.Popen[bytes]]
    logs: list[Path]
    data_dir: Path
    trust: dict[str, str]
    body: dict[str, str]
    request_id: str


def _ok(response: httpx.Response) -> httpx.Response:
    assert response.status_code < 300, f"{response.request.url}: {response.text[:500]}"
    return response


def _set_up(base: str) -> tuple[dict[str, str], dict[str, str], str]:
    """A trust and a body, and the body's request for the trust's A&E figures of PERIOD."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}) as admin:
        tokens = {}
        for code, kind in ((TRUST, "trust"), (BODY, "oversight_body")):
            body = {"code": code, "name": code, "kind": kind}
            if kind == "trust":
                body["region"] = "Y56"
            _ok(admin.post("/v1/organisations", json=body))
            token = _ok(admin.post(f"/v1/organisations/{code}/tokens")).json()["token"]
            tokens[code] = {"Authorization": f"Bearer {token}"}
    request = _ok(
        httpx.post(
            f"{base}/v1/requests",
            headers=tokens[BODY],
            json={
                "title": "A&E activity",
                "purpose": "Monthly A&E attendances, four-hour breaches and admissions.",
                "legal_basis": "Health and Social Care Act 2012, section 259",
                "items": ["ae_attendances", "ae_breaches", "ae_admissions"],
                "organisations": [TRUST],
                "period_start": PERIOD,
                "period_end": PERIOD,
                "due_days": 20,
            },
        )
    )
    return tokens[TRUST], tokens[BODY], request.json()["id"]


@pytest.fixture(scope="module", params=["embedded", "distributed"])
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    """`drb serve` alone (embedded), or `drb serve` and `drb worker` (distributed), once for
    the module."""
    directory = tmp_path_factory.mktemp(request.param)
    settings = {"data_dir": str(directory / "var"), "admin_token": ADMIN}
    with ExitStack() as stack:
        if request.param == "distributed":
            postgres = request.getfixturevalue("postgres_url")
            settings["database_url"] = stack.enter_context(fresh_postgres(postgres))
            settings["redis_url"] = request.getfixturevalue("redis_url")
        env = drb_env(**settings)
        migrated = run_drb("migrate", env=env)
        assert migrated.returncode == 0, migrated.stderr
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        logs = [directory / "serve.log"]
        processes = [start_drb("serve", "--port", str(port), env=env, log=logs[0])]
        stack.callback(stop, processes[0])
        if request.param == "distributed":
            logs.append(directory / "worker.log")
            processes.append(start_drb("worker", "--threads", "2", env=env, log=logs[1]))
            stack.callback(stop, processes[1])
        wait_until(lambda: healthy(base), timeout=60, what="drb serve", log=logs[0])
        trust, body, request_id = _set_up(base)
        yield Broker(base, processes, logs, directory / "var", trust, body, request_id)


@pytest.fixture(scope="module")
def outcomes(
    broker: Broker, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[dict[str, object], list[dict[str, object]]]]:
    """Every case uploaded, then each submission and its errors once all are decided."""
    directory = tmp_path_factory.mktemp("files")
    sent: dict[str, str] = {}
    for case in CASES:
        path = directory / case.name / case.filename
        path.parent.mkdir()
        case.build(path)
        with path.open("rb") as file:
            response = httpx.post(
                f"{broker.base}/v1/submissions",
                headers=broker.trust,
                data={"dataset": "ae_monthly", "period": PERIOD},
                files={"file": (case.filename, file, "application/octet-stream")},
                timeout=120,
            )
        assert response.status_code == 202, f"{case.name}: {response.text[:500]}"
        sent[case.name] = response.json()["id"]
        path.unlink()

    def shown(submission_id: str) -> dict[str, object]:
        response = httpx.get(
            f"{broker.base}/v1/submissions/{submission_id}", headers=broker.trust, timeout=30
        )
        return dict(_ok(response).json())

    wait_until(
        lambda: all(shown(i)["status"] in ("accepted", "rejected") for i in sent.values()),
        timeout=180,
        what="every hostile file to be decided",
        log=broker.logs[-1],
    )
    return {
        name: (
            shown(submission_id),
            _ok(
                httpx.get(
                    f"{broker.base}/v1/submissions/{submission_id}/errors",
                    headers=broker.trust,
                    timeout=30,
                )
            ).json(),
        )
        for name, submission_id in sent.items()
    }


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_hostile_file_is_rejected_with_one_plain_error(
    case: Case, outcomes: dict[str, tuple[dict[str, object], list[dict[str, object]]]]
) -> None:
    submission, errors = outcomes[case.name]
    assert (submission["status"], submission["error_count"]) == ("rejected", 1), errors
    assert [(error["row"], error["check"]) for error in errors] == [(case.row, case.check)], errors
    assert case.says in str(errors[0]["message"])


@pytest.mark.integration
def test_every_process_stays_up_and_nothing_is_stored(
    broker: Broker, outcomes: dict[str, tuple[dict[str, object], list[dict[str, object]]]]
) -> None:
    assert len(outcomes) == len(CASES)
    # The same processes as at the start (same pids), still running, still answering.
    assert [process.poll() for process in broker.processes] == [None] * len(broker.processes)
    time.sleep(1)
    assert httpx.get(f"{broker.base}/v1/health", timeout=10).json()["status"] == "ok"
    for log in broker.logs:
        assert "Aborted" not in log.read_text(errors="replace")
    # Nothing kept: no upload, no file in the store, no cell held for the request.
    kept = [
        path.relative_to(broker.data_dir)
        for folder in ("uploads", "store")
        for path in (broker.data_dir / folder).rglob("*")
        if path.is_file()
    ]
    assert kept == []
    request = _ok(
        httpx.get(f"{broker.base}/v1/requests/{broker.request_id}", headers=broker.body)
    ).json()
    assert [item["cells_held"] for item in request["coverage"]["items"]] == [0, 0, 0]
