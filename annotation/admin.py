from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from annotation.models import (
    ApiToken,
    Criterion,
    FailureMode,
    FailureModeChange,
    ImportJob,
    Invitation,
    Label,
    LabelChange,
    Membership,
    Note,
    NoteFailureMode,
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


class NoteFailureModeInline(admin.TabularInline):
    # Read-only: a link must carry its note's trace, which the coding board and services fill in.
    model = NoteFailureMode
    extra = 0
    fields = readonly_fields = ["failure_mode", "created_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    list_display = ["trace", "author", "created_at"]
    raw_id_fields = ["trace", "author"]
    inlines = [NoteFailureModeInline]


class LabelChangeInline(admin.TabularInline):
    model = LabelChange
    extra = 0
    # The criterion and the first-entry flag are written with the entry (label_submit, imports) and read by the
    # reliability numbers: not edited here, and no entry is added here either.
    readonly_fields = ["verdict", "critique", "author", "changed_at", "criterion", "is_first"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Label | None = None) -> bool:
        return False


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


class FailureModeChangeInline(admin.TabularInline):
    model = FailureModeChange
    extra = 0
    fields = readonly_fields = ["action", "detail", "actor", "created_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(FailureMode)
class FailureModeAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "retired_at"]
    raw_id_fields = ["project", "merged_into"]
    inlines = [FailureModeChangeInline]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "created_at", "last_used_at"]
    readonly_fields = ["token_hash"]
    raw_id_fields = ["project"]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["file_name", "project", "status", "created_count", "rejected_count", "created_at"]
    raw_id_fields = ["project", "user"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "project", "role", "invited_by", "created", "accepted_at"]
    list_filter = ["project", "role"]
    search_fields = ["email"]
    raw_id_fields = ["invited_by", "accepted_by"]
