"""Regression-suite floors: the pass rate a release must reach on a criterion, whatever its baseline did."""

from __future__ import annotations

import math

from django.db import transaction

from annotation.models import Criterion, Project
from annotation.services import DomainError
from suites.models import SuiteFloor


def suite_floors(*, project: Project) -> dict[int, float]:
    """criterion id → floor, for the project's criteria that have one."""
    return dict(SuiteFloor.objects.filter(criterion__project=project).values_list("criterion_id", "min_pass_rate"))


def suite_floor(*, criterion: Criterion) -> float | None:
    return SuiteFloor.objects.filter(criterion=criterion).values_list("min_pass_rate", flat=True).first()


@transaction.atomic
def suite_floor_set(*, criterion: Criterion, min_pass_rate: float | None) -> float | None:
    """Set the criterion's floor (a fraction from 0 to 1), or remove it with None."""
    if min_pass_rate is None:
        SuiteFloor.objects.filter(criterion=criterion).delete()
        return None
    if not (math.isfinite(min_pass_rate) and 0.0 <= min_pass_rate <= 1.0):
        raise DomainError(f"The regression-suite floor is a pass rate from 0 to 1; got {min_pass_rate}.")
    SuiteFloor.objects.update_or_create(criterion=criterion, defaults={"min_pass_rate": min_pass_rate})
    return min_pass_rate
