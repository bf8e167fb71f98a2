"""Checks that monitoring runs on production traffic, whichever app owns them: a registry of providers.

Monitoring (a stage-3 app) judges production traces with checks it does not define: a criterion's promoted judge
version (judges), an outcome grader promoted into monitoring (agents, a sibling that monitoring must not import).
The owner of a kind of check registers a `CheckProvider` here in its `AppConfig.ready`, the way later apps add
panels to annotation's pages (annotation.panels). Monitoring asks every provider for a project's current checks and
drains, charts and alerts on them alike: one cursor and one set of verdict rows per check, one series per subject.

- A **subject** is what a monitoring page shows and its alert rules watch across time: a criterion, an agent task
  completion grader. The provider names it with an id of its own (`subject_id`).
- A **check** is what judges the subject's traffic now: the criterion's promoted judge version, the grader itself.
  A new promotion is a new check with its own cursor and verdicts; the subject's series and rules stay.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from judges.providers import Outcome, TraceInput

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from annotation.models import Project, Trace

# Judges a batch of production traces, in order: one Outcome each (judges.kinds.Scorer has the same shape).
CheckScorer = Callable[[list[TraceInput]], list[Outcome]]


@dataclass(frozen=True)
class Subject:
    """What a series follows, as its provider describes it."""

    provider: str
    subject_id: int
    name: str  # on the pages and in alert messages
    description: str = ""  # e.g. the criterion's definition
    criterion_id: int | None = None  # set when the subject is a criterion
    # How to get it monitored, when nothing monitors it now (a sentence, and the page where that is done).
    how_to_monitor: str = ""
    how_to_monitor_url: str = ""


@dataclass(frozen=True)
class Check:
    """A check monitoring runs now, as its provider describes it."""

    subject: Subject
    key: int  # the provider's id of the check (a judge version's, a grader's): unique within the provider
    label: str  # "apology v1"
    kind: str  # "assertion judge", "LLM judge", "outcome grader on the final output"
    since: datetime  # promoted (into monitoring) at
    # Runs here without paying anyone (assertion, classifier, outcome grader): may judge all production traffic.
    local: bool
    # The production traces it is for, in words ("production traces", "production agent trials").
    scope: str = "production traces"
    # Why it cannot judge traces it has never seen ("" when it can): monitoring skips it.
    cannot_judge: str = ""
    # The confusion counts (tp, fn, fp, tn and the rates) that correct its observed pass rate, e.g. a promotion's
    # report; None when there are none, and `no_evidence` says why.
    evidence: dict | None = None
    no_evidence: str = ""
    # What the evidence was measured on, in words ("test"; "dev (promoted before test evidence was required)").
    evidence_source: str = ""
    chunk_size: int = 500
    # Why its numbers may mislead, in words (a judge version made under an earlier definition); "" when none.
    warning: str = ""

    @property
    def provider(self) -> str:
        return self.subject.provider

    @property
    def subject_id(self) -> int:
        return self.subject.subject_id


class CheckProvider(ABC):
    """One owner's checks. Register an instance with `provider_register` in the owner's AppConfig.ready."""

    # The registry key, stored with monitoring's series and checks: never rename a registered provider.
    name: ClassVar[str]
    # Whether its checks have evidence that corrects their pass rate (then a "corrected" alert rule makes sense).
    corrects: ClassVar[bool] = True

    @abstractmethod
    def current(self, *, project: Project) -> list[Check]:
        """The project's checks monitoring runs now, at most one per subject, in the order pages list them."""

    @abstractmethod
    def subjects(self, *, project: Project) -> list[Subject]:
        """Every subject of the project this provider could monitor, monitored now or not."""

    @abstractmethod
    def project_ids(self) -> list[int]:
        """The projects with at least one current check (the drain of every project visits these)."""

    @abstractmethod
    def scorer(self, check: Check) -> CheckScorer:
        """Judges batches of the check's production traces; what it loads once it keeps across batches."""

    def subject(self, *, project: Project, subject_id: int) -> Subject | None:
        """The project's subject with this id, or None (another project's is None too)."""
        return next((s for s in self.subjects(project=project) if s.subject_id == subject_id), None)

    def covers(self, check: Check, traces: QuerySet[Trace]) -> QuerySet[Trace]:
        """The project's production traces the check is for (by default all of them)."""
        return traces


_providers: dict[str, CheckProvider] = {}


def provider_register(provider: CheckProvider) -> CheckProvider:
    """Add a provider; registering the same name again replaces it (AppConfig.ready may run more than once)."""
    _providers[provider.name] = provider
    return provider


def provider_unregister(name: str) -> None:
    _providers.pop(name, None)


def providers() -> list[CheckProvider]:
    """Every registered provider, in registration order (INSTALLED_APPS order)."""
    return list(_providers.values())


def provider(name: str) -> CheckProvider | None:
    return _providers.get(name)
