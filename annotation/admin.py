from __future__ import annotations

from django.contrib import admin

from annotation.models import (
    ApiToken,
    Criterion,
    FailureMode,
    ImportJob,
    Label,
    LabelChange,
    Membership,
    Note,
    Project,
    Trace,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "expert", "created_at"]
    search_fields = ["slug", "name"]
    raw_id_fields = ["expert"]
    inlines = [MembershipInline]


@admin.register(Trace)
class TraceAdmin(admin.ModelAdmin):
    # At a million traces: no full count, no joins in the list, search on the indexed key only.
    list_display = ["external_id", "project", "source", "occurred_at", "reviewed_at"]
    list_filter = ["project"]
    search_fields = ["=external_id"]
    raw_id_fields = ["project"]
    show_full_result_count = False
    list_select_related = ["project"]


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    list_display = ["trace", "author", "created_at"]
    raw_id_fields = ["trace", "author"]
    filter_horizontal = ["failure_modes"]


class LabelChangeInline(admin.TabularInline):
    model = LabelChange
    extra = 0
    readonly_fields = ["verdict", "critique", "author", "changed_at"]
    can_delete = False


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ["trace", "criterion", "verdict", "author", "updated_at"]
    list_filter = ["verdict"]
    raw_id_fields = ["trace", "criterion", "author"]
    inlines = [LabelChangeInline]


@admin.register(Criterion)
class CriterionAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "position"]
    raw_id_fields = ["project", "failure_mode"]


@admin.register(FailureMode)
class FailureModeAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "retired_at"]
    raw_id_fields = ["project"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "created_at", "last_used_at"]
    readonly_fields = ["token_hash"]
    raw_id_fields = ["project"]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["file_name", "project", "status", "created_count", "rejected_count", "created_at"]
    raw_id_fields = ["project", "user"]
