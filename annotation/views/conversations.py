"""A conversation: the traces that share a session id (`session_id`; from OTel `session.id`,
`gen_ai.conversation.id` or `langfuse.session.id`), read in time order on one page, each linking to its trace page.

Any member may read it; the session id comes in the query string (`?session=…`) because it may hold any character.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation.access import get_project_for_user
from annotation.rendering import make_block
from annotation.selectors import conversation_read


@login_required
@require_GET
def conversation_detail(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    session_id = request.GET.get("session", "")
    if not session_id.strip():
        return HttpResponseBadRequest("session: give the session id whose traces to read (?session=…)")
    conversation = conversation_read(project=access.project, session_id=session_id)
    if not conversation.traces:
        raise Http404("No trace of this project has that session id")
    turns = [
        {
            "trace": trace,
            "input": make_block(trace.input, markdown=False) if trace.input else None,
            "output": make_block(trace.output, markdown=True) if trace.output else None,
            "messages": len(trace.messages or []),
        }
        for trace in conversation.traces
    ]
    context = {"project": access.project, "access": access, "conversation": conversation, "turns": turns}
    return render(request, "annotation/conversation.html", context)
