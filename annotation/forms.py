"""Forms for the review page: labels, notes and the sitting target. Validation only; writes go through services."""

from __future__ import annotations

from django import forms

from annotation.models import Verdict
from annotation.services import CRITIQUE_MAX_CHARS, NOTE_MAX_CHARS


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
