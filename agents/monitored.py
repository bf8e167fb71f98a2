"""Outcome graders promoted into production monitoring, as monitored checks (judges.monitored).

A grader promoted into monitoring (GraderPromotion) judges the project's production agent trials — traces with a
task id and a trial number whose source is production — and their task-completion rate is a series with intervals
and alert rules like any criterion's. Monitoring drains, charts and alerts on it through this provider, registered
in AgentsConfig.ready; agents never imports monitoring, nor monitoring agents.

A grader is an assertion that defines completion; no expert labels measure its errors, so its pass rate is not
corrected (the page says so) and a "corrected" alert rule is refused. Graders run here without paying anyone, so a
series of one may be set to judge all production trials instead of the sample.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.urls import reverse

from agents.models import GraderPromotion, OutcomeGrader
from agents.services import CHUNK_SIZE, grader_outcome, only_trials
from annotation.models import Project, Trace
from judges.monitored import Check, CheckProvider, CheckScorer, Subject
from judges.providers import Outcome, TraceInput

GRADER = "grader"
TRIALS_SCOPE = "production agent trials"
NO_CORRECTION = (
    "not corrected: an outcome grader defines completion, and no expert labels measure its errors; "
    "the observed rate is the task-completion rate"
)


def grader_subject(grader: OutcomeGrader, project: Project) -> Subject:
    return Subject(
        provider=GRADER,
        subject_id=grader.pk,
        name=f"task completion ({grader.name})",
        description=grader.description,
        how_to_monitor="Promote the grader into monitoring on the agents page",
        how_to_monitor_url=f"{reverse('agents', args=[project.slug])}?grader={grader.pk}",
    )


class PromotedGraders(CheckProvider):
    name = GRADER
    corrects = False

    def current(self, *, project: Project) -> list[Check]:
        promotions = (
            GraderPromotion.objects.filter(grader__project=project, ended_at=None)
            .select_related("grader")
            .order_by("grader__name", "grader_id")
        )
        return [
            Check(
                subject=grader_subject(p.grader, project),
                key=p.grader_id,
                label=f"grader {p.grader.name}",
                kind=f"outcome grader on the {p.grader.get_target_display().lower()}",
                since=p.promoted_at,
                local=True,
                scope=TRIALS_SCOPE,
                evidence=None,
                no_evidence=NO_CORRECTION,
                chunk_size=CHUNK_SIZE,
            )
            for p in promotions
        ]

    def subjects(self, *, project: Project) -> list[Subject]:
        graders = OutcomeGrader.objects.filter(project=project).order_by("name", "pk")
        return [grader_subject(grader, project) for grader in graders]

    def subject(self, *, project: Project, subject_id: int) -> Subject | None:
        grader = OutcomeGrader.objects.filter(project=project, pk=subject_id).first()
        return grader_subject(grader, project) if grader else None

    def project_ids(self) -> list[int]:
        promoted = GraderPromotion.objects.filter(ended_at=None)
        return list(promoted.values_list("grader__project_id", flat=True).distinct().order_by())

    def covers(self, check: Check, traces: QuerySet[Trace]) -> QuerySet[Trace]:
        return only_trials(traces)

    def scorer(self, check: Check) -> CheckScorer:
        grader = OutcomeGrader.objects.get(pk=check.key)

        def score(traces: list[TraceInput]) -> list[Outcome]:
            return [grader_outcome(grader, trace) for trace in traces]

        return score
