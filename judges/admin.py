from __future__ import annotations

from django.contrib import admin

from judges.models import Judge, JudgeRun, JudgeVersion


class JudgeVersionInline(admin.TabularInline):
    # Versions are immutable: shown, never edited here.
    model = JudgeVersion
    extra = 0
    fields = readonly_fields = ["number", "config", "comment", "created_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Judge)
class JudgeAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "criterion", "project", "created_at"]
    list_filter = ["kind"]
    raw_id_fields = ["project", "criterion", "created_by"]
    inlines = [JudgeVersionInline]


@admin.register(JudgeRun)
class JudgeRunAdmin(admin.ModelAdmin):
    list_display = ["version", "split", "status", "total", "created_at", "finished_at"]
    list_filter = ["status", "split"]
    raw_id_fields = ["version", "created_by"]
    readonly_fields = ["report"]
