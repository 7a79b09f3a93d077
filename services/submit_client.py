"""The client side of `drb submit`: upload with progress, wait for validation, show errors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

SHOWN_ERRORS = 50
# Status is asked for soon after the upload (small returns validate in well under a second), then
# less and less often: 0.1 s, 0.15 s, 0.225 s ... up to once every 2 seconds.
FIRST_POLL_SECONDS = 0.1
MAX_POLL_SECONDS = 2.0
_console = Console(stderr=False)


class _Reading:
    """A file object that moves a progress bar as httpx reads it."""

    def __init__(self, path: Path, progress: Progress, task: Any) -> None:
        self._handle = path.open("rb")
        self._progress = progress
        self._task = task

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self._progress.update(self._task, advance=len(chunk))
        return chunk

    def close(self) -> None:
        self._handle.close()


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:500]}"
    lines = [f"HTTP {response.status_code}: {body.get('detail') or body.get('title')}"]
    for error in body.get("errors") or []:
        lines.append(f"  {error.get('field', '')}: {error.get('message', '')}")
    return "\n".join(lines)


def run(
    *,
    file: Path,
    dataset: str,
    period: str,
    url: str,
    token: str,
    idempotency_key: str | None,
    wait: bool,
    timeout: float,
) -> int:
    """Upload and report; the exit code: 0 accepted (or queued), 1 rejected, 2 failed."""
    headers = {"Authorization": f"Bearer {token}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    size = file.stat().st_size
    with httpx.Client(base_url=url, headers=headers, timeout=httpx.Timeout(60, read=600)) as client:
        with Progress(
            TextColumn("[bold]upload[/bold] {task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=_console,
            transient=False,
        ) as progress:
            task = progress.add_task(file.name, total=size)
            reading = _Reading(file, progress, task)
            try:
                response = client.post(
                    "/v1/submissions",
                    files={"file": (file.name, reading, "application/octet-stream")},  # type: ignore[dict-item]
                    data={"dataset": dataset, "period": period},
                )
            except httpx.HTTPError as error:
                _console.print(f"[red]could not reach the broker at {url}: {error}[/red]")
                return 2
            finally:
                reading.close()
        if response.status_code not in (200, 202):
            _console.print(f"[red]{_problem(response)}[/red]")
            return 2
        submission = response.json()
        if response.status_code == 200:
            _console.print("This exact file was sent before: showing the first submission.")
        _console.print(f"submission {submission['id']}: {submission['status']}")
        if not wait:
            return 0
        deadline = time.monotonic() + timeout
        pause = FIRST_POLL_SECONDS
        with _console.status("validating...") as status:
            while submission["status"] in ("received", "validating"):
                if time.monotonic() > deadline:
                    _console.print(
                        "[yellow]still validating; check again later with "
                        f"GET /v1/submissions/{submission['id']}[/yellow]"
                    )
                    return 0
                time.sleep(pause)
                pause = min(pause * 1.5, MAX_POLL_SECONDS)
                reply = client.get(f"/v1/submissions/{submission['id']}")
                if reply.status_code != 200:
                    _console.print(f"[red]{_problem(reply)}[/red]")
                    return 2
                submission = reply.json()
                status.update(f"{submission['status']}...")
        if submission["status"] == "accepted":
            _console.print(
                f"[green]accepted[/green]: {submission['rows']:,} rows, "
                f"revision {submission['revision']}"
            )
            for warning in submission.get("warnings") or []:
                # Never a rejection: a value far outside the trust's own history, to check.
                _console.print(f"[yellow]warning[/yellow]: {warning['message']}")
            return 0
        errors = client.get(f"/v1/submissions/{submission['id']}/errors").json()
        _show_errors(submission, errors, url)
        return 1


def _show_errors(submission: dict[str, Any], errors: list[dict[str, Any]], url: str) -> None:
    rows = submission.get("rows")
    _console.print(
        f"[red]rejected[/red]: {submission['error_count']:,} error(s)"
        + (f" in {rows:,} rows" if rows is not None else "")
    )
    table = Table("row", "column", "check", "value", "message", show_lines=False)
    for error in errors[:SHOWN_ERRORS]:
        table.add_row(
            *(
                "" if error.get(k) is None else str(error[k])
                for k in ("row", "column", "check", "value", "message")
            )
        )
    _console.print(table)
    if len(errors) > SHOWN_ERRORS:
        _console.print(
            f"... and {len(errors) - SHOWN_ERRORS:,} more: "
            f"{url}/v1/submissions/{submission['id']}/errors?format=csv"
        )
