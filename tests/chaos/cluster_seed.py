"""Writes what the PostgreSQL restart tests need into their throwaway cluster, from a subprocess whose DATABASE_URL
points at it (pytest-django's test database is the shared server's, so the test process cannot write there itself).

    python -m tests.chaos.cluster_seed project SLUG          -> {"project_id": n, "token": "..."}
    python -m tests.chaos.cluster_seed judge-run SLUG TRACES  -> {"run_id": n}   (queued to the worker)

Prints one JSON object on stdout.
"""

from __future__ import annotations

import json
import sys


def project(slug: str) -> dict[str, object]:
    from annotation.services import api_token_create
    from tests.factories import make_project, make_user

    created = make_project(slug=slug, name=f"Chaos {slug}", expert=make_user(f"expert-{slug}"))
    _, token = api_token_create(project=created, name="chaos")
    return {"project_id": created.pk, "token": token}


def judge_run(slug: str, traces: int) -> dict[str, object]:
    from annotation.models import Label, Project, Trace
    from judges.services import judge_create, judge_run_enqueue
    from tests.factories import make_criterion

    owner = Project.objects.get(slug=slug)
    criterion = make_criterion(project=owner, name="no_apology")
    rows = Trace.objects.bulk_create(
        Trace(project=owner, external_id=f"j-{i}", shuffle_key=owner.shuffle_key(f"j-{i}"), output=f"Done {i}.")
        for i in range(traces)
    )
    Label.objects.bulk_create(Label(trace=t, criterion=criterion, verdict="pass", author=owner.expert) for t in rows)
    judge = judge_create(project=owner, criterion=criterion, name="gpt", kind="llm", config={"few_shot": 0})
    run = judge_run_enqueue(version=judge.latest_version(), split="all")
    return {"run_id": run.pk}


def main(argv: list[str]) -> None:
    import django

    django.setup()
    command, slug, *rest = argv
    if command == "project":
        result = project(slug)
    elif command == "judge-run":
        result = judge_run(slug, int(rest[0]))
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
