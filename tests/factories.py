"""Plain factory functions for test data; keyword-only, with sensible defaults."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth.models import User

from annotation.models import Criterion, FailureMode, Label, Membership, Note, NoteFailureMode, Project, Role, Trace
from annotation.services import project_create

_counter = itertools.count(1)


def make_user(username: str | None = None, *, password: str = "pw-for-tests-only") -> User:
    username = username or f"user{next(_counter)}"
    return User.objects.create_user(username=username, password=password)


def make_project(*, slug: str | None = None, expert: User | None = None, **kwargs: Any) -> Project:
    slug = slug or f"project-{next(_counter)}"
    return project_create(slug=slug, name=kwargs.pop("name", slug.title()), expert=expert, **kwargs)


def add_member(project: Project, user: User, role: str = Role.ENGINEER) -> Membership:
    return Membership.objects.create(project=project, user=user, role=role)


def make_trace(*, project: Project, external_id: str | None = None, **fields: Any) -> Trace:
    external_id = external_id or f"t-{next(_counter)}"
    fields.setdefault("input", f"Question {external_id}?")
    fields.setdefault("output", f"Answer for {external_id}.")
    return Trace.objects.create(
        project=project, external_id=external_id, shuffle_key=project.shuffle_key(external_id), **fields
    )


def make_criterion(*, project: Project, name: str | None = None, **fields: Any) -> Criterion:
    name = name or f"criterion-{next(_counter)}"
    fields.setdefault("definition", f"Pass when {name} holds.")
    return Criterion.objects.create(project=project, name=name, **fields)


def make_label(*, trace: Trace, criterion: Criterion, verdict: str = "pass", critique: str = "") -> Label:
    return Label.objects.create(
        trace=trace, criterion=criterion, verdict=verdict, critique=critique, author=trace.project.expert
    )


def make_note(*, trace: Trace, author: User, text: str = "Something is off") -> Note:
    return Note.objects.create(trace=trace, author=author, text=text)


def make_agent_trace(*, project: Project, external_id: str | None = None, **fields: Any) -> Trace:
    """A multi-turn agent trajectory: a system prompt, a tool call with JSON arguments, its result and an answer."""
    fields.setdefault(
        "messages",
        [
            {"role": "system", "content": "You are a support agent."},
            {"role": "user", "content": "Where is my order 42?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup_order", "arguments": '{"order_id": 42, "verbose": true}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'},
            {"role": "assistant", "content": "Your order **has shipped**."},
        ],
    )
    fields.setdefault("input", "")
    fields.setdefault("output", "")
    return make_trace(project=project, external_id=external_id, **fields)


def code_note(note: Note, *modes: FailureMode) -> Note:
    """Link the note to the modes the way the codebook does (each link carries the note's trace)."""
    NoteFailureMode.objects.bulk_create(
        [NoteFailureMode(note=note, failure_mode=mode, trace_id=note.trace_id) for mode in modes]
    )
    return note
