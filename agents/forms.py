from __future__ import annotations

from typing import Any

from django import forms

from agents.models import OutcomeGrader
from agents.services import NAME_MAX, grader_config_clean
from core.json_input import JsonTooDeep, json_loads
from judges.providers import ConfigError

CONFIG_EXAMPLE = (
    '{"check": "json_schema", "schema": {"required": ["status"], "properties": {"status": {"const": "refunded"}}}}'
)


class GraderForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX)
    target = forms.ChoiceField(choices=OutcomeGrader.Target.choices, initial=OutcomeGrader.Target.FINAL_OUTPUT)
    config = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": CONFIG_EXAMPLE, "spellcheck": "false"}),
        help_text=(
            "An assertion config (JSON). On the final output or state: regex, contains, json, json_schema or length, "
            "optionally with a path. On the tool calls: tool_called (optionally with arguments_schema, or in_order), "
            "tool_not_called or tool_call_count."
        ),
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def clean_config(self) -> object:
        text = self.cleaned_data["config"]
        try:
            return json_loads(text, where="config")
        except JsonTooDeep as exc:
            raise forms.ValidationError(str(exc)) from None
        except ValueError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc}") from None

    def clean(self) -> dict[str, Any]:
        # The check depends on what the grader looks at: a tool check for the tool calls, another for the end.
        cleaned = super().clean()
        if "config" in cleaned and cleaned.get("target"):
            try:
                cleaned["config"] = grader_config_clean(cleaned["config"], target=cleaned["target"])
            except ConfigError as exc:
                self.add_error("config", str(exc))
        return cleaned
