"""Forms for the review page (labels, notes, the sitting target) and for criteria. Validation only; writes go
through services."""

from __future__ import annotations

from django import forms

from annotation.models import Verdict
from annotation.services import (
    API_TOKEN_MAX_DAYS,
    CRITERION_DEFINITION_MAX_CHARS,
    CRITERION_NAME_MAX_CHARS,
    CRITIQUE_MAX_CHARS,
    NOTE_MAX_CHARS,
)


class LabelForm(forms.Form):
    # Empty verdict: a critique autosaved before pass/fail was chosen (kept on the page, not saved).
    verdict = forms.ChoiceField(choices=[("", "—"), *Verdict.choices], required=False)
    critique = forms.CharField(required=False, max_length=CRITIQUE_MAX_CHARS)


class NoteForm(forms.Form):
    text = forms.CharField(max_length=NOTE_MAX_CHARS, widget=forms.Textarea)


class SittingForm(forms.Form):
    """How many traces the expert means to review in this sitting; `restart` starts counting afresh."""

    target = forms.IntegerField(min_value=1, max_value=100_000, required=False)
    restart = forms.BooleanField(required=False)
    next = forms.CharField(required=False, max_length=2000)


class CriterionForm(forms.Form):
    name = forms.CharField(max_length=CRITERION_NAME_MAX_CHARS)
    definition = forms.CharField(
        max_length=CRITERION_DEFINITION_MAX_CHARS,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What pass and what fail mean, in the expert's words. LLM judges are given this text.",
    )
    failure_mode = forms.ModelChoiceField(
        queryset=None, required=False, empty_label="— none —", help_text="The failure mode this criterion checks for."
    )

    def __init__(self, *args, modes, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["failure_mode"].queryset = modes


class ApiTokenForm(forms.Form):
    """A new project API token: what it is for, and optionally how many days it works."""

    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. ci or production-app.")
    expires_in_days = forms.IntegerField(
        label="Expires in (days)",
        min_value=1,
        max_value=API_TOKEN_MAX_DAYS,
        required=False,
        help_text="Empty: the token works until it is revoked.",
    )
