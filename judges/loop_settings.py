"""The expert's settings of the loop's cadence and the digest webhook (judges.models.LoopCadence)."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import Project
from annotation.services import DomainError
from core import outbound
from judges.loop_rules import CadenceSettingError, check_setting
from judges.models import LoopCadence


@transaction.atomic
def loop_cadence_set(
    *,
    project: Project,
    cycle_days: object,
    cycle_size: object,
    outlier_days: object,
    outlier_size: object,
    digest_url: str = "",
    user: AbstractBaseUser | None = None,
) -> LoopCadence:
    """Sets the project's cadence (by the expert; the view checks) and the digest webhook ("" turns it off). Every
    value is checked before anything is written; the error names the setting and the project."""
    values = {}
    try:
        for name, value in (
            ("cycle_days", cycle_days),
            ("cycle_size", cycle_size),
            ("outlier_days", outlier_days),
            ("outlier_size", outlier_size),
        ):
            values[name] = check_setting(name, value)
    except CadenceSettingError as exc:
        raise DomainError(f"{exc} for project {project.slug!r}") from exc
    digest_url = digest_url.strip()
    if digest_url:
        if not digest_url.lower().startswith(("http://", "https://")):
            raise DomainError(f"digest_url: expected an http:// or https:// URL, got {digest_url!r}")
        refusal = outbound.url_refusal(digest_url)
        if refusal:
            raise DomainError(f"digest_url: the webhook is refused: {refusal}")
    cadence, _ = LoopCadence.objects.update_or_create(
        project=project,
        defaults={**values, "digest_url": digest_url, "updated_by": user, "updated_at": timezone.now()},
    )
    return cadence
