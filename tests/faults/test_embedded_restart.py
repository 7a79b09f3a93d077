"""Embedded mode: `drb serve` killed -9 with validations queued in its own memory."""

from __future__ import annotations

import time
from pathlib import Path

from tests.faults.conftest import DrbProcesses
from tests.faults.returns import assert_each_exactly_once, finished, outcome, register, submit
from tests.processes import run_drb, wait_until


def test_work_queued_in_a_killed_process_is_finished_at_the_next_start(
    drb_processes: DrbProcesses, tmp_path: Path
) -> None:
    data_dir = tmp_path / "var"
    database_url = f"sqlite:///{data_dir / 'broker.sqlite3'}"
    # A short lease for the one validation running when it dies; the queued ones are re-sent at
    # once whatever the lease (the in-memory queue they were sent to died with the process).
    drb_processes.settings.update(
        data_dir=str(data_dir), job_lease_seconds="3", job_heartbeat_seconds="1"
    )
    migrated = run_drb("migrate", env=drb_processes.env())
    assert migrated.returncode == 0, migrated.stderr
    first = drb_processes.serve(slow_validation=30, worker_threads="1")
    tokens = register(first.base, 4)
    ids = [submit(first.base, token, code) for code, token in tokens.items()]
    time.sleep(1)  # one validation under way (sleeping), the others queued behind it
    assert not finished(database_url, data_dir, ids[:1])
    drb_processes.kill(first.process)

    second = drb_processes.serve()
    wait_until(
        lambda: finished(database_url, data_dir, ids),
        timeout=60,
        what="the restarted process to finish the killed one's validations",
        log=second.log,
        process=second.process,
    )
    assert_each_exactly_once(outcome(database_url, data_dir), ids, list(tokens))
