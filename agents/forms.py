from __future__ import annotations

import json
from typing import Any

from django import forms

from agents.models import OutcomeGrader
from agents.services import NAME_MAX, grader_config_clean
from judges.providers import ConfigError

CONFIG_EXAMPLE = (
    '{"check": "json_schema", "schema": {"required": ["status"], "properties": {"status": {"const": "refunded"}}}}'
)


class GraderForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX)
    target = forms.ChoiceField(choices=OutcomeGrader.Target.choices, initial=OutcomeGrader.Target.FINAL_OUTPUT)
    config = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": CONFIG_EXAMPLE, "spellcheck": "false"}),
        help_text="An assertion config (JSON): regex, contains, json, json_schema or length, optionally with a path.",
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def clean_config(self) -> dict[str, Any]:
        text = self.cleaned_data["config"]
        try:
            config = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc}") from None
        try:
            return grader_config_clean(config)
        except ConfigError as exc:
            raise forms.ValidationError(str(exc)) from None
