"""Turn untrusted trace data into display structures and sanitised HTML. No Django import: tested without a database.

Two layers protect the page: markdown-it renders with raw HTML disabled (so `<script>` in a trace is text), then
nh3 cleans the result against a small allow-list (so even a markdown-it bug cannot emit an attribute or a URL we
did not allow). Everything else a template shows from a trace is plain text and goes through Django's autoescape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import nh3
from markdown_it import MarkdownIt

# Above this, a block of text is shown collapsed; the reader opens it on demand. Keeps 200 KB traces scrollable.
COLLAPSE_CHARS = 3000
# Markdown rendering is linear, but a single huge blob is rarely prose; show it as preformatted text instead.
MARKDOWN_MAX_CHARS = 100_000
PREVIEW_CHARS = 280

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "del", "s",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


class SafeHTML(str):
    """Markup that has been sanitised here. Django's escaping honours `__html__`, so templates print it as is."""

    __slots__ = ()

    def __html__(self) -> str:
        return str(self)


def _build_markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    # Images would load third-party URLs (tracking pixels) from untrusted text; the alt text is shown instead.
    md.disable("image")
    return md


_MARKDOWN = _build_markdown()


def _only_safe_hrefs(tag: str, attribute: str, value: str) -> str | None:
    # nh3 already enforces the schemes; this also drops relative and fragment links, which in a trace can only
    # point back into EvalStudio itself (e.g. a crafted link to a state-changing page).
    if tag == "a" and attribute == "href":
        lowered = value.strip().lower()
        if not lowered.startswith(("http://", "https://", "mailto:")):
            return None
    return value


_CLEANER = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    clean_content_tags={"script", "style"},
    attributes=ALLOWED_ATTRIBUTES,
    attribute_filter=_only_safe_hrefs,
    url_schemes=ALLOWED_URL_SCHEMES,
    url_relative="deny",
    link_rel="noopener noreferrer",
    strip_comments=True,
)


def sanitize_html(html: str) -> SafeHTML:
    return SafeHTML(_CLEANER.clean(html))


def render_markdown(text: str) -> SafeHTML:
    """Markdown from an LLM or a user, as HTML that cannot run script or load anything."""
    if not text:
        return SafeHTML("")
    if len(text) > MARKDOWN_MAX_CHARS:
        escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return SafeHTML(f"<pre>{escaped}</pre>")
    return sanitize_html(_MARKDOWN.render(text))


def pretty_json(value: Any) -> str:
    """Tool arguments arrive as a JSON string (OpenAI format) or an object; indent when they parse."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if not isinstance(parsed, dict | list):
            return value
        value = parsed
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
    except (TypeError, ValueError):
        return str(value)


def as_text(value: Any) -> str:
    """Any JSON value as display text: strings as they are, the rest as indented JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return pretty_json(value)


@dataclass
class Block:
    """A piece of text to show, rendered as markdown or kept verbatim, collapsed when long."""

    text: str
    html: SafeHTML | None = None
    collapsed: bool = False
    preview: str = ""

    @property
    def size(self) -> int:
        return len(self.text)


def make_block(text: str, *, markdown: bool) -> Block:
    long = len(text) > COLLAPSE_CHARS
    return Block(
        text=text,
        html=render_markdown(text) if markdown else None,
        collapsed=long,
        preview=text[:PREVIEW_CHARS].replace("\n", " ") if long else "",
    )


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str
    arguments_are_json: bool


@dataclass
class Turn:
    index: int
    role: str
    name: str = ""
    content: Block | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str = ""
    tool_name: str = ""
    extra: str = ""

    @property
    def is_tool_result(self) -> bool:
        return self.role in {"tool", "function"}


def _content_text(content: Any) -> str:
    # OpenAI content may be a list of parts: [{"type": "text", "text": ...}, {"type": "image_url", ...}].
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                parts.append(as_text(part))
        return "\n\n".join(parts)
    return as_text(content)


def _tool_call(raw: Any) -> ToolCall:
    if not isinstance(raw, dict):
        return ToolCall(id="", name="?", arguments=as_text(raw), arguments_are_json=False)
    function = raw.get("function") if isinstance(raw.get("function"), dict) else raw
    arguments = function.get("arguments", "")
    pretty = pretty_json(arguments) if arguments not in ("", None) else ""
    parses = isinstance(arguments, dict | list)
    if isinstance(arguments, str):
        try:
            parses = isinstance(json.loads(arguments), dict | list)
        except ValueError:
            parses = False
    return ToolCall(
        id=str(raw.get("id") or ""),
        name=str(function.get("name") or "?"),
        arguments=pretty,
        arguments_are_json=parses,
    )


def build_turns(messages: Any) -> list[Turn]:
    """Messages in OpenAI chat format as role-labelled turns; one pass, so 100+ messages cost linear time."""
    if not isinstance(messages, list):
        return []
    # Tool results name only the call id; map ids to function names so each result says which tool answered.
    names: dict[str, str] = {}
    turns: list[Turn] = []
    for index, message in enumerate(messages, start=1):
        if not isinstance(message, dict):
            turns.append(Turn(index=index, role="unknown", content=make_block(as_text(message), markdown=False)))
            continue
        role = str(message.get("role") or "unknown")
        turn = Turn(index=index, role=role, name=str(message.get("name") or ""))
        for raw_call in message.get("tool_calls") or []:
            call = _tool_call(raw_call)
            turn.tool_calls.append(call)
            if call.id:
                names[call.id] = call.name
        if isinstance(message.get("function_call"), dict):  # the legacy single-call format
            turn.tool_calls.append(_tool_call(message["function_call"]))
        text = _content_text(message.get("content"))
        if text:
            # Assistant prose is markdown; user text, system prompts and tool output are shown verbatim.
            turn.content = make_block(text, markdown=role == "assistant")
        if turn.is_tool_result:
            turn.tool_call_id = str(message.get("tool_call_id") or "")
            turn.tool_name = turn.name or names.get(turn.tool_call_id, "")
        turns.append(turn)
    return turns


def context_blocks(context: Any) -> list[Block]:
    """RAG context: a list of passages (strings or objects with text/content), or a single value."""
    if context in (None, "", [], {}):
        return []
    items = context if isinstance(context, list) else [context]
    blocks = []
    for item in items:
        if isinstance(item, dict):
            text = item.get("text") or item.get("content") or item.get("page_content")
            blocks.append(make_block(text if isinstance(text, str) else as_text(item), markdown=False))
        else:
            blocks.append(make_block(as_text(item), markdown=False))
    return blocks


@dataclass(frozen=True)
class MetadataRow:
    key: str
    value: str

    @property
    def multiline(self) -> bool:
        return "\n" in self.value


def metadata_rows(metadata: Any) -> list[MetadataRow]:
    """Metadata as key/value text rows for a table; nested values as indented JSON."""
    if not isinstance(metadata, dict):
        return [MetadataRow("value", as_text(metadata))] if metadata not in (None, "", {}) else []
    return [MetadataRow(str(key), as_text(value)) for key, value in metadata.items()]


def trace_pane(trace: Any) -> dict[str, Any]:
    """What `templates/annotation/_trace_pane.html` shows of a trace (its input, messages, output, context and
    metadata as display structures), for every page that includes it."""
    return {
        "input_block": make_block(trace.input, markdown=False) if trace.input else None,
        "output_block": make_block(trace.output, markdown=True) if trace.output else None,
        "turns": build_turns(trace.messages),
        "context_blocks": context_blocks(trace.context),
        "metadata": metadata_rows(trace.metadata),
    }
