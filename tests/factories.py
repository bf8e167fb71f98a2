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


def make_split_labels(
    *, criterion: Criterion, split: str, outputs: list[tuple[str, str]], prefix: str, critique: str = ""
) -> list[Trace]:
    """Labelled traces that fall in `split` of the criterion (ids `{prefix}-{n}` chosen by their split, so the
    counts are exact whatever the criterion's id), one per (output, expert verdict). Bulk-inserted: a promotion's
    test run needs dozens of labels of each class (the bar is met on the 95% lower bounds)."""
    from judges.selectors import split_key  # a later stage than annotation's factories above
    from judges.splits import split_of

    project, key = criterion.project, split_key(criterion)
    ids: list[str] = []
    number = 0
    while len(ids) < len(outputs):
        external_id = f"{prefix}-{number}"
        number += 1
        if split_of(key, external_id) == split:
            ids.append(external_id)
    traces = Trace.objects.bulk_create(
        Trace(
            project=project,
            external_id=external_id,
            shuffle_key=project.shuffle_key(external_id),
            input=f"Question {external_id}?",
            output=output,
        )
        for external_id, (output, _) in zip(ids, outputs, strict=True)
    )
    Label.objects.bulk_create(
        Label(trace=trace, criterion=criterion, verdict=verdict, critique=critique, author=project.expert)
        for trace, (_, verdict) in zip(traces, outputs, strict=True)
    )
    return traces
