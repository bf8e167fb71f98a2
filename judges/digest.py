"""The weekly digest: the loop's facts (judges.loop.loop_payload) POSTed as JSON to the webhook the expert set.

Delivered like monitoring's alert webhooks (docs/security-outbound.md): through the outbound guard, which checks the
URL's host again at send time; signed with HMAC-SHA256 of "{timestamp}.{body}" under the project's digest secret
in `X-EvalStudio-Signature` (`v1=<hex>`), the unix time in `X-EvalStudio-Timestamp`, and `X-EvalStudio-Event:
loop.digest`. A digest is due a week after the last delivered one; the Celery beat entry `loop-digests` sends the
due ones, and one that fails is tried again at the next beat.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from core import outbound
from judges.loop import loop_facts, loop_payload
from judges.models import LoopCadence

logger = logging.getLogger(__name__)

DIGEST_EVERY = timedelta(days=7)
EVENT = "loop.digest"


def digest_signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """v1= and the hex HMAC-SHA256 of "{timestamp}.{body}": the scheme of monitoring's alert webhooks, so one
    receiver checks both (the timestamp is signed, so a captured delivery cannot be replayed under a fresh one)."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def digest_send(*, cadence: LoopCadence, now: datetime | None = None) -> outbound.OutboundResult:
    """POST the project's digest to its webhook now and record the outcome on the settings row. Never raises."""
    now = now or timezone.now()
    payload = {"event": EVENT, **loop_payload(loop_facts(project=cadence.project, now=now))}
    body = json.dumps(payload).encode()
    timestamp = int(time.time())
    result = outbound.request(
        "POST",
        cadence.digest_url,
        body=body,
        headers={
            "Content-Type": "application/json",
            "X-EvalStudio-Event": EVENT,
            "X-EvalStudio-Timestamp": str(timestamp),
            "X-EvalStudio-Signature": digest_signature(secret=cadence.digest_secret, timestamp=timestamp, body=body),
        },
        timeout=settings.EVALSTUDIO_MONITOR_WEBHOOK_TIMEOUT_SECONDS,
        max_bytes=settings.EVALSTUDIO_OUTBOUND_MAX_RESPONSE_BYTES,
    )
    if not result.ok:
        logger.warning("Project %s: loop digest not delivered: %s", cadence.project_id, result.detail)
    return result


def digests_send_due(*, now: datetime | None = None) -> int:
    """Send every digest that is due (a webhook set, none delivered in the last week); the number delivered.

    Each is claimed with a conditional UPDATE of `digest_sent_at` first, so two beats (or two workers) never post the
    same week's digest twice; a failed delivery puts the previous value back, so the next beat tries again."""
    now = now or timezone.now()
    due = LoopCadence.objects.exclude(digest_url="").filter(
        Q(digest_sent_at=None) | Q(digest_sent_at__lte=now - DIGEST_EVERY)
    )
    delivered = 0
    for cadence in due.select_related("project"):
        previous = cadence.digest_sent_at
        claimed = LoopCadence.objects.filter(pk=cadence.pk, digest_sent_at=previous).update(digest_sent_at=now)
        if not claimed:
            continue  # another beat took it
        try:
            result = digest_send(cadence=cadence, now=now)
        except Exception:
            # A fact that could not be read must not swallow the week: put the claim back and let the next beat try.
            LoopCadence.objects.filter(pk=cadence.pk, digest_sent_at=now).update(digest_sent_at=previous)
            logger.exception("Project %s: loop digest failed", cadence.project_id)
            continue
        fields = {"digest_status": result.status, "digest_error": "" if result.ok else result.error}
        if not result.ok:
            fields["digest_sent_at"] = previous
        LoopCadence.objects.filter(pk=cadence.pk).update(**fields)
        delivered += int(result.ok)
    return delivered
