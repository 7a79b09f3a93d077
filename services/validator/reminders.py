"""The daily reminder pass, as a job: queued by the worker's sweep with extract maintenance."""

from __future__ import annotations

import logging
from datetime import date, datetime

from services.catalogue import reminders
from services.catalogue.jobs import JobContext

log = logging.getLogger(__name__)


def send_reminders(context: JobContext) -> None:
    """Send today's reminders and summaries not sent yet (once a day from DRB_REMINDER_HOUR;
    a pass that finds them sent sends nothing, one that finds them failed sends them again)."""
    if not reminders.due_now(datetime.now(), context.settings):
        return
    handled = reminders.run_pass(
        factory=context.factory, settings=context.settings, today=date.today()
    )
    for notification in handled:
        log.info(
            "notification %s to %s: %s",
            notification["kind"],
            notification["org_code"],
            notification["status"],
            extra={
                "notification_id": notification["id"],
                "org_code": notification["org_code"],
                "channel": notification["channel"],
            },
        )
