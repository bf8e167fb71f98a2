"""The demo project gets one outcome grader over its agent trials, so the agents page has something to show."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Count

from agents.models import OutcomeGrader, TrialGrade
from agents.reliability import overall
from agents.selectors import task_counts
from demo.grader import DEMO_GRADER

pytestmark = pytest.mark.django_db


def test_load_demo_grades_the_demo_trials_once(settings):
    settings.DEBUG = True
    call_command("load_demo", stdout=StringIO())
    grader = OutcomeGrader.objects.get(project__slug="demo", name=DEMO_GRADER)
    grades = TrialGrade.objects.filter(grader=grader)
    assert grades.count() == 20 and not grades.filter(passed__isnull=True).exists()
    # The fraud task always promises a wait, the dispute task in 3 of 4 trials: a real gap between the curves.
    failing = dict(grades.filter(passed=False).values_list("task_id").annotate(n=Count("pk")))
    assert failing == {"task-fraud-two-charges": 4, "task-dispute-duplicate": 3}
    rows = overall(task_counts(grader=grader))
    assert rows[0].pass_at_k == pytest.approx(0.65)
    assert rows[3].pass_at_k == pytest.approx(0.8) and rows[3].pass_hat_k == pytest.approx(0.6)
    call_command("load_demo", stdout=StringIO())
    assert OutcomeGrader.objects.count() == 1 and TrialGrade.objects.count() == 20
