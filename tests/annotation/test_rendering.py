"""annotation.rendering without a database: markdown is sanitised, trace structures are built linearly."""

from __future__ import annotations

import time
from html.parser import HTMLParser

import pytest

from annotation.rendering import (
    ALLOWED_TAGS,
    COLLAPSE_CHARS,
    SafeHTML,
    build_turns,
    context_blocks,
    make_block,
    metadata_rows,
    pretty_json,
    render_markdown,
)

PAYLOADS = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=1">',
    "[click](javascript:window.__xss=1)",
    '<svg onload="window.__xss=1"><circle r="4"/></svg>',
    '<a href="javascript:alert(1)">x</a>',
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![img](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    '<iframe src="https://evil.example"></iframe>',
    "[x](JaVaScRiPt:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "<details open ontoggle=alert(1)>",
    '<a href="https://ok.example" onclick="alert(1)">ok</a>',
]


class _Elements(HTMLParser):
    """Collects the real elements and attributes of an HTML fragment (escaped text is not an element)."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def _elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html)
    return parser.elements


@pytest.mark.parametrize("payload", PAYLOADS)
def test_markdown_never_emits_script_handlers_or_dangerous_urls(payload):
    for tag, attrs in _elements(render_markdown(payload)):
        assert tag in ALLOWED_TAGS
        assert tag not in {"script", "svg", "img", "iframe", "details"}
        assert not [name for name in attrs if name.startswith("on")]
        assert "src" not in attrs and "style" not in attrs
        if "href" in attrs:
            assert (attrs["href"] or "").startswith(("http://", "https://", "mailto:"))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payloads_render_as_visible_text(payload):
    # Nothing is silently dropped: the reviewer sees what the model produced, as inert text.
    html = render_markdown(payload)
    assert html.strip() != ""
    assert "window.__xss" in html or "alert" in html or "evil.example" in html or "PHN" in html or "ok" in html


def test_raw_html_in_markdown_is_shown_as_text():
    assert render_markdown("<script>window.__xss=1</script>") == (
        "<p>&lt;script&gt;window.__xss=1&lt;/script&gt;</p>\n"
    )


def test_javascript_link_is_not_a_link():
    html = render_markdown("[click](javascript:window.__xss=1)")
    assert "<a" not in html
    assert "click" in html


def test_http_links_get_noopener_noreferrer():
    html = render_markdown("[docs](https://example.com/a?b=1)")
    assert html == '<p><a href="https://example.com/a?b=1" rel="noopener noreferrer">docs</a></p>\n'


def test_mailto_links_are_kept_and_relative_links_dropped():
    assert 'href="mailto:help@example.com"' in render_markdown("[mail](mailto:help@example.com)")
    relative = render_markdown("[admin](/admin/auth/user/) [frag](#top)")
    assert "href" not in relative
    assert "admin" in relative


def test_markdown_formatting_survives_sanitising():
    html = render_markdown("# Title\n\n**bold** and `code`\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html
    assert "<code>code</code>" in html
    assert "<li>one</li>" in html
    assert "<td>1</td>" in html


def test_markdown_images_are_not_loaded():
    html = render_markdown("![pixel](https://tracker.example/p.gif)")
    assert "<img" not in html
    assert "tracker.example" in html  # shown as text, so the reader still sees what was there


def test_rendered_markdown_is_marked_safe_for_templates():
    html = render_markdown("*hi*")
    assert isinstance(html, SafeHTML)
    assert html.__html__() == "<p><em>hi</em></p>\n"


def test_huge_text_is_escaped_preformatted_not_markdown():
    text = "<b>x</b> " * 20_000
    html = render_markdown(text)
    assert html.startswith("<pre>&lt;b&gt;x&lt;/b&gt;")


def test_pretty_json_indents_parsable_arguments_and_keeps_the_rest():
    assert pretty_json('{"q": "reactors", "n": 2}') == '{\n  "q": "reactors",\n  "n": 2\n}'
    assert pretty_json("not json {") == "not json {"
    assert pretty_json('"just a string"') == '"just a string"'


def test_turns_have_roles_tool_calls_and_named_tool_results():
    turns = build_turns(
        [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "search", "arguments": '{"q":1}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "result text"},
            {"role": "assistant", "content": "**done**"},
        ]
    )
    assert [t.role for t in turns] == ["user", "assistant", "tool", "assistant"]
    assert turns[0].content.html is None and turns[0].content.text == "hi"
    assert turns[1].content is None
    call = turns[1].tool_calls[0]
    assert (call.name, call.arguments, call.arguments_are_json) == ("search", '{\n  "q": 1\n}', True)
    assert turns[2].is_tool_result and turns[2].tool_name == "search" and turns[2].tool_call_id == "c1"
    assert turns[3].content.html == "<p><strong>done</strong></p>\n"


def test_unparsable_tool_arguments_are_shown_verbatim():
    turns = build_turns([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{bad"}}]}])
    assert turns[0].tool_calls[0].arguments == "{bad"
    assert turns[0].tool_calls[0].arguments_are_json is False


def test_content_parts_and_odd_messages_do_not_break_rendering():
    turns = build_turns(
        [
            {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {}}]},
            "a bare string",
            {"content": "no role"},
        ]
    )
    assert turns[0].content.text.startswith("look\n\n{")
    assert turns[1].role == "unknown" and turns[1].content.text == "a bare string"
    assert turns[2].role == "unknown"
    assert build_turns(None) == [] and build_turns({"not": "a list"}) == []


def test_context_accepts_strings_objects_and_a_single_value():
    blocks = context_blocks(["passage one", {"text": "passage two", "score": 0.3}, {"id": 7}])
    assert [b.text for b in blocks] == ["passage one", "passage two", '{\n  "id": 7\n}']
    assert [b.text for b in context_blocks("only one")] == ["only one"]
    assert context_blocks(None) == [] and context_blocks([]) == []


def test_metadata_rows_flatten_nested_values_to_json():
    rows = metadata_rows({"locale": "en", "scores": {"a": 1}})
    assert [(r.key, r.value, r.multiline) for r in rows] == [
        ("locale", "en", False),
        ("scores", '{\n  "a": 1\n}', True),
    ]


def test_long_blocks_are_collapsed_with_a_preview():
    block = make_block("x" * (COLLAPSE_CHARS + 1), markdown=False)
    assert block.collapsed is True
    assert len(block.preview) == 280
    assert make_block("short", markdown=True).collapsed is False


def test_a_long_trace_is_built_in_linear_time():
    messages = [{"role": "user" if i % 2 else "assistant", "content": f"turn {i} " + "word " * 400} for i in range(300)]
    started = time.thread_time()
    turns = build_turns(messages)
    elapsed = time.thread_time() - started
    assert len(turns) == 300
    # 300 messages, ~600 KB: a generous bound that a quadratic pass over the messages would not meet. CPU time of this
    # thread, which a busy machine's other processes do not stretch as they do the wall clock.
    assert elapsed < 2.0
