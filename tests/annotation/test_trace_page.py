"""The trace page renders every kind of trace readably, escapes everything from the trace, and copes with size."""

from __future__ import annotations

import re
import time

import pytest
from django.urls import reverse

from tests.factories import make_agent_trace, make_criterion, make_label, make_note, make_trace

pytestmark = pytest.mark.django_db


def _page(client, trace) -> str:
    response = client.get(reverse("trace_detail", args=[trace.project.slug, trace.external_id]))
    assert response.status_code == 200
    return response.content.decode()


def test_single_turn_trace_shows_input_and_rendered_markdown_output(project, expert_client):
    trace = make_trace(project=project, input="How many reactors?", output="There are **92** reactors.")
    html = _page(expert_client, trace)
    assert "How many reactors?" in html
    assert "There are <strong>92</strong> reactors." in html
    assert "single-turn" in html


def test_multi_turn_chat_shows_role_labelled_turns_in_order(project, expert_client):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello, *friend*"},
        {"role": "user", "content": "Bye"},
    ]
    trace = make_trace(project=project, input="", output="", messages=messages)
    html = _page(expert_client, trace)
    roles = re.findall(r'class="turn turn-(\w+)" id="turn-(\d+)"', html)
    assert roles == [("system", "1"), ("user", "2"), ("assistant", "3"), ("user", "4")]
    assert "Hello, <em>friend</em>" in html


def test_agent_trace_shows_tool_calls_with_pretty_arguments_and_results(project, expert_client):
    trace = make_agent_trace(project=project)
    html = _page(expert_client, trace)
    assert '<code class="fn">lookup_order</code>' in html
    assert "{\n  &quot;order_id&quot;: 42,\n  &quot;verbose&quot;: true\n}" in html
    assert "Tool result from <code>lookup_order</code>" in html
    assert "{&quot;status&quot;: &quot;shipped&quot;}" in html
    assert '<details class="tool-call" open>' in html
    assert "Your order <strong>has shipped</strong>." in html


def test_rag_context_is_collapsible_and_metadata_is_a_table(project, expert_client):
    trace = make_trace(
        project=project,
        context=["Passage about reactors", {"text": "Second passage"}],
        metadata={"model": "gpt-x", "locale": "en"},
    )
    html = _page(expert_client, trace)
    assert '<details class="rag-context">' in html
    assert "Retrieved context · 2 passages" in html
    assert "Passage about reactors" in html and "Second passage" in html
    assert '<tr><th scope="row">model</th><td>gpt-x</td></tr>' in html
    assert '<tr><th scope="row">locale</th><td>en</td></tr>' in html


def test_everything_from_the_trace_is_escaped(project, expert_client):
    evil = '<script>window.__xss=1</script><img src=x onerror="window.__xss=1">'
    trace = make_agent_trace(
        project=project,
        external_id="evil<b>",
        input=evil,
        output=evil + " [click](javascript:window.__xss=1)",
        context=[evil],
        metadata={evil: evil},
        source="<svg onload=1>",
        messages=[
            {"role": evil, "content": evil, "name": evil},
            {
                "role": "assistant",
                "content": evil,
                "tool_calls": [{"id": evil, "function": {"name": evil, "arguments": f'{{"q": "{"</script>"}"}}'}}],
            },
            {"role": "tool", "tool_call_id": evil, "content": evil},
        ],
    )
    html = _page(expert_client, trace)
    assert "<script>window" not in html
    assert "<img src=x" not in html
    assert "<svg onload" not in html
    assert 'href="javascript' not in html
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in html


def test_long_trace_with_hundreds_of_messages_renders_quickly_and_collapses_long_content(project, expert_client):
    messages = []
    for i in range(150):
        messages.append({"role": "user", "content": f"Question {i} " + "lorem ipsum " * 60})
        messages.append({"role": "assistant", "content": f"Answer {i} " + "dolor sit amet " * 60})
    messages[5]["content"] = "HUGE " * 2000  # 10 KB in one message
    trace = make_trace(project=project, input="", output="", messages=messages)
    # CPU time of this thread (the test client renders the page here): a busy machine does not stretch it.
    started = time.thread_time()
    html = _page(expert_client, trace)
    elapsed = time.thread_time() - started
    assert len(trace.messages) == 300
    assert html.count('class="turn turn-') == 300
    assert html.count('<details class="long-block">') == 1
    assert "10000 characters, show all" in html
    assert elapsed < 3.0  # ~250 KB of messages; a generous bound against accidental quadratic work


def test_expert_sees_controls_with_existing_label_and_critique(project, expert_client):
    trace = make_trace(project=project)
    criterion = make_criterion(project=project, name="factual")
    make_label(trace=trace, criterion=criterion, verdict="fail", critique="Invents a number")
    html = _page(expert_client, trace)
    assert 'data-verdict="fail"' in html
    assert 'class="verdict-fail is-selected"' in html
    assert ">Invents a number</textarea>" in html
    assert 'id="mark-reviewed"' in html


def test_teammate_sees_labels_read_only_without_controls(project, teammate_client):
    trace = make_trace(project=project)
    criterion = make_criterion(project=project, name="factual")
    make_label(trace=trace, criterion=criterion, verdict="pass", critique="Checks out")
    html = _page(teammate_client, trace)
    assert '<span class="verdict-badge verdict-pass">Pass</span>' in html
    assert "Checks out" in html
    assert "data-verdict-button" not in html
    assert 'class="critique"' not in html
    assert 'id="mark-reviewed"' not in html
    assert 'id="note-new"' in html  # teammates do write notes


def test_notes_show_edit_controls_only_on_own_notes(project, expert, teammate, teammate_client):
    trace = make_trace(project=project)
    mine = make_note(trace=trace, author=teammate, text="teammate note")
    theirs = make_note(trace=trace, author=expert, text="expert note")
    html = _page(teammate_client, trace)
    assert reverse("note_edit", args=["acme", mine.pk]) in html
    assert reverse("note_edit", args=["acme", theirs.pk]) not in html
    assert "expert note" in html


def test_page_loads_review_script_and_stylesheet_from_static_files_only(project, expert_client):
    html = _page(expert_client, make_trace(project=project))
    assert '<script src="/static/js/trace_review.js" defer></script>' in html
    assert "/static/css/review.css" in html
    assert " onclick=" not in html and "hx-on" not in html
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", html, flags=re.S)
    assert all(body.strip() == "" for body in scripts)  # CSP script-src 'self': no inline script


def test_unknown_trace_is_404(project, expert_client):
    assert expert_client.get(reverse("trace_detail", args=["acme", "nope"])).status_code == 404


def test_external_ids_with_slashes_and_spaces_resolve(project, expert_client):
    trace = make_trace(project=project, external_id="runs/2026 11/t 1")
    assert "runs/2026 11/t 1" in _page(expert_client, trace)
