"""Forms of the monitoring pages: an alert rule, and the project's production sampling rate (in percent)."""

from __future__ import annotations

from django import forms

from core import outbound
from monitoring.models import AlertRule


class AlertRuleForm(forms.ModelForm):
    # Entered in percent, stored as a fraction.
    threshold_percent = forms.FloatField(min_value=0, max_value=100, label="Threshold (%)")
    webhook_url = forms.URLField(
        max_length=500, required=False, assume_scheme="https", label="Webhook URL (optional; receives a JSON POST)"
    )

    class Meta:
        model = AlertRule
        fields = ["metric", "bound", "side", "bucket", "min_sample", "webhook_url", "enabled"]
        labels = {"min_sample": "Minimum judged traces in the bucket"}

    def clean_webhook_url(self) -> str:
        url = self.cleaned_data["webhook_url"]
        if url and not url.lower().startswith(("http://", "https://")):
            raise forms.ValidationError("The webhook must be an http:// or https:// URL.")
        refusal = outbound.url_refusal(url) if url else None
        if refusal:
            raise forms.ValidationError(f"The webhook is refused: {refusal}.")
        return url


class SamplingRateForm(forms.Form):
    rate_percent = forms.FloatField(
        min_value=0,
        max_value=100,
        label="Production sampling rate (%)",
        help_text="Applies to traces ingested from now on; traces already stored keep whether they were sampled.",
    )
