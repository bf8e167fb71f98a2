from __future__ import annotations

from django.contrib import admin

from agents.models import GradingRun, OutcomeGrader


@admin.register(OutcomeGrader)
class OutcomeGraderAdmin(admin.ModelAdmin):
    list_display = ["name", "target", "project", "created_at"]
    list_filter = ["target"]
    raw_id_fields = ["project", "created_by"]
    # A grader's check never changes once it has graded (its grades would stop meaning one thing).
    readonly_fields = ["target", "config"]


@admin.register(GradingRun)
class GradingRunAdmin(admin.ModelAdmin):
    list_display = ["grader", "status", "graded", "total", "created_at", "finished_at"]
    list_filter = ["status"]
    raw_id_fields = ["grader", "created_by"]
