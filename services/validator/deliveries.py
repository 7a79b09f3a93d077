"""Extract jobs: build a request's extracts, deliver each to its body's channel, track them."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from services.catalogue import audit, extracts, store
from services.catalogue.channels import (
    ChannelMisconfigured,
    DeliveryFailed,
    channel_for,
    delivery_local_id,
)
from services.catalogue.jobs import JobContext
from services.catalogue.models import utcnow
from services.catalogue.repositories import extracts as extract_repo
from services.catalogue.repositories import organisations as org_repo
from services.catalogue.repositories import requests as request_repo
from services.catalogue.states import SETTLED, DeliveryStatus

log = logging.getLogger(__name__)
# Backoff between delivery attempts: 1, 2, 4, ... minutes, at most an hour.
MAX_BACKOFF = timedelta(hours=1)


def refresh_extracts(context: JobContext) -> None:
    """Build the extracts of one request that are due and not yet built from the same data."""
    assert context.subject_id is not None
    with context.session() as session:
        built = extracts.refresh(
            session=session,
            settings=context.settings,
            request_id=context.subject_id,
            today=date.today(),
        )
    for extract in built:
        log.info(
            "extract %s rev %d of request %s built (%d rows)",
            extract.period,
            extract.revision,
            extract.request_id,
            extract.rows,
            extra={
                "extract_id": extract.id,
                "request_id": extract.request_id,
                "org_code": extract.body_code,
                "rows": extract.rows,
            },
        )


def deliver_extract(context: JobContext) -> None:
    """Deliver one extract revision; never twice (the channel checks the revision's local id)."""
    assert context.subject_id is not None
    with context.session() as session:
        delivery = extract_repo.delivery(session=session, delivery_id=context.subject_id)
        if delivery is None or delivery.status in SETTLED:
            return
        extract = extract_repo.get(session=session, extract_id=delivery.extract_id)
        assert extract is not None
        body = org_repo.get(session=session, code=extract.body_code)
        settings = context.settings
        source = store.absolute(settings, extract.path)
        filename = extracts.delivery_filename(extract)
        local_id = delivery_local_id(extract.id, extract.revision)
        subject = (
            f"Data request {extract.request_id}: {extract.period}, revision {extract.revision}"
        )
        config = body.delivery if body else None
    try:
        channel = channel_for(config, settings=settings, body_code=extract.body_code)
        if channel is None:
            raise ChannelMisconfigured("the body takes its extracts over the API only")
        sent = channel.deliver(source=source, filename=filename, local_id=local_id, subject=subject)
    except (ChannelMisconfigured, ValueError, FileNotFoundError) as error:
        # Retrying cannot help: a wrong setting, or the extract file is gone from the store.
        _record_failure(context, retry=False, error=str(error))
        return
    except DeliveryFailed as error:
        _record_failure(context, retry=True, error=str(error))
        raise  # the queue retries with backoff; the sweep picks it up if the message is lost
    with context.session() as session:
        delivery = extract_repo.delivery(session=session, delivery_id=context.subject_id)
        assert delivery is not None
        delivery.status = sent.status
        delivery.message_id = sent.message_id
        delivery.attempts += 1
        delivery.last_error = None
        delivery.updated_at = utcnow()
        audit.record(
            session=session,
            actor="DRB-VALIDATOR",
            action="extract.delivered",
            subject_type="extract",
            subject_id=delivery.extract_id,
            detail={
                "channel": delivery.channel,
                "target": delivery.target,
                "message_id": sent.message_id,
                "already": sent.already,
            },
        )


def _record_failure(context: JobContext, *, retry: bool, error: str) -> None:
    assert context.subject_id is not None
    with context.session() as session:
        delivery = extract_repo.delivery(session=session, delivery_id=context.subject_id)
        assert delivery is not None
        delivery.attempts += 1
        delivery.last_error = error
        delivery.updated_at = utcnow()
        if retry:
            wait = min(timedelta(minutes=2 ** min(delivery.attempts - 1, 6)), MAX_BACKOFF)
            delivery.next_attempt_at = utcnow() + wait
        else:
            delivery.status = DeliveryStatus.FAILED
        # The error names folders, hosts or MESH's answer: for operators (never the body), and
        # never a row value (extracts are delivered whole, not read).
        log.warning(
            "delivery %s failed (attempt %d): %s",
            delivery.id,
            delivery.attempts,
            error,
            extra={
                "delivery_id": delivery.id,
                "extract_id": delivery.extract_id,
                "channel": delivery.channel,
                "attempts": delivery.attempts,
                "retrying": retry,
            },
        )


def maintain_extracts(context: JobContext) -> None:
    """Periodic: refresh requests past due; follow MESH messages until acknowledged."""
    today = date.today()
    with context.session() as session:
        for request in request_repo.active(session=session):
            extracts.enqueue_refresh(session=session, request_id=request.id)
        tracked = extract_repo.deliveries_with_status(session=session, status=DeliveryStatus.SENT)
        for delivery in tracked:
            extract = extract_repo.get(session=session, extract_id=delivery.extract_id)
            body = org_repo.get(session=session, code=extract.body_code) if extract else None
            if extract is None or delivery.message_id is None:
                continue
            try:
                channel = channel_for(
                    body.delivery if body else None,
                    settings=context.settings,
                    body_code=extract.body_code,
                )
                status = channel.status(delivery.message_id) if channel else delivery.status
            except (DeliveryFailed, ChannelMisconfigured) as error:
                log.warning(
                    "could not track delivery %s: %s",
                    delivery.id,
                    error,
                    extra={"delivery_id": delivery.id, "extract_id": delivery.extract_id},
                )
                continue
            if status != delivery.status:
                delivery.status = status
                delivery.updated_at = utcnow()
    log.debug("extract maintenance done for %s", today)
