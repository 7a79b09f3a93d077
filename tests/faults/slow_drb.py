"""`drb` with a slow validation, for fault tests only: ``python -m tests.faults.slow_drb ARGS``.

Each validation first sleeps DRB_TEST_SLOW_VALIDATION_SECONDS, so that a test can kill the
process while it validates or watch a validation outlive its lease. The hook lives here, in
tests/, never in the production code paths.
"""

from __future__ import annotations

import os
import time

from services.catalogue.jobs import JobContext


def main() -> None:
    from services.cli import app
    from services.validator import handlers

    delay = float(os.environ.get("DRB_TEST_SLOW_VALIDATION_SECONDS", "0"))
    real = handlers.HANDLERS["validate_submission"]

    def slow(context: JobContext) -> None:
        time.sleep(delay)
        real(context)

    # The actor reads this dict when it runs a job: the slow handler replaces the real one.
    handlers.HANDLERS["validate_submission"] = slow
    app(prog_name="drb")


if __name__ == "__main__":
    main()
