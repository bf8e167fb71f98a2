"""What a crawler needs from a page: the links a user can follow (`<a href>`, `hx-get`, GET forms submitted with
their default values), the POST forms with their fields, and the element ids (to find duplicates). Pure parsing on
`html.parser`, no Django."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

# What a browser does not submit, and what carries no text a user types.
NOT_SUBMITTED = {"submit", "button", "reset", "image"}
UNTYPED = {"hidden"}
# How the app's templates mark what went wrong: Django's errorlist, the messages framework's "error" tag, our classes.
ERROR_CLASSES = {"error", "errorlist", "errors", "field-error", "flash-error", "mode-error"}
# Attributes that name elements of the page by id: a list of ids, or (htmx) CSS selectors of which `#id` parts count.
ID_REFERENCES = ("for", "list", "form", "aria-labelledby", "aria-describedby", "aria-controls")
HTMX_SELECTORS = ("hx-target", "hx-include", "hx-indicator")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Field:
    name: str
    kind: str  # input type, "textarea" or "select"
    value: str = ""
    checked: bool = False
    options: list[str] = field(default_factory=list)
    selected: list[str] = field(default_factory=list)
    element_id: str = ""
    required: bool = False


@dataclass
class Form:
    method: str
    action: str  # resolved against the page's URL
    htmx: bool  # submitted by htmx (hx-post): the CSRF token comes from <body hx-headers>
    htmx_get: bool = False  # a GET form submitted by htmx (hx-get)
    hx_target: str = ""  # the id of its hx-target, sent by htmx as HX-Target
    fields: list[Field] = field(default_factory=list)
    submit: tuple[str, str] | None = None  # the first submit button's name and value, as a browser sends it
    submittable: bool = False  # it has a submit control or an htmx trigger: a user can send it

    @property
    def has_csrf_input(self) -> bool:
        return any(f.name == "csrfmiddlewaretoken" and f.value for f in self.fields)

    def default_data(self) -> list[tuple[str, str]]:
        """The pairs a browser submits when the user changes nothing."""
        data: list[tuple[str, str]] = []
        for f in self.fields:
            if f.kind in ("checkbox", "radio"):
                if f.checked:
                    data.append((f.name, f.value or "on"))
            elif f.kind == "select":
                chosen = f.selected or f.options[:1]
                data.extend((f.name, value) for value in chosen)
            elif f.kind != "file":
                data.append((f.name, f.value))
        if self.submit:
            data.append(self.submit)
        return data

    def empty_data(self) -> list[tuple[str, str]]:
        """The pairs submitted when the user clears every field: hidden values kept, text empty, nothing chosen."""
        data = [(f.name, f.value) for f in self.fields if f.kind in UNTYPED]
        data += [(f.name, "") for f in self.fields if f.kind not in UNTYPED | {"checkbox", "radio", "select", "file"}]
        if self.submit:
            data.append(self.submit)
        return data

    @property
    def user_fields(self) -> list[Field]:
        return [f for f in self.fields if f.kind not in UNTYPED]

    def get_url(self) -> str:
        """Where a GET form goes when submitted as it is drawn: its action with the default values as the query."""
        scheme, netloc, path, _query, _fragment = urlsplit(self.action)
        return urlunsplit((scheme, netloc, path, urlencode(self.default_data()), ""))


class PageParser(HTMLParser):
    def __init__(self, url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.url = url
        self.ids: Counter[str] = Counter()
        self.links: list[str] = []  # <a href>
        self.refs: list[tuple[str, str, str]] = []  # (tag, attribute, value) of the attributes naming ids
        self.hx_links: list[str] = []  # hx-get, requested by htmx with `HX-Request: true`
        self.hx_targets: dict[str, str] = {}  # hx-get URL -> the id of its hx-target, which htmx sends as HX-Target
        self.forms: list[Form] = []
        self.labels: dict[str, str] = {}  # element id -> label text
        self.body_csrf = ""
        self._form: Form | None = None
        self._textarea: Field | None = None
        self._select: Field | None = None
        self._option_pending = False  # an <option> without a value attribute, which submits its text
        self._option_selected = False
        self._label_for: str | None = None
        self._label_text: list[str] = []
        self.errors: list[str] = []  # texts of the elements that say what went wrong
        self._error_depth = 0  # the open-element depth of the error element being read, 0 outside one
        self._error_text: list[str] = []
        self.template_leaks: list[str] = []  # Django template syntax shown as text: a tag split over lines, say
        self.unclosed: list[str] = []  # open-element stack, to report what was never closed
        self.stray_end_tags: list[str] = []

    def _resolve(self, href: str) -> str:
        return urljoin(self.url, href)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag not in VOID:
            self.unclosed.append(tag)
            is_error = ERROR_CLASSES & set(a.get("class", "").split())
            if is_error and not self._error_depth:
                self._error_depth = len(self.unclosed)
                self._error_text = []
        if a.get("id"):
            self.ids[a["id"]] += 1
        for attr in ID_REFERENCES + HTMX_SELECTORS:
            if a.get(attr):
                self.refs.append((tag, attr, a[attr]))
        if tag == "body" and a.get("hx-headers"):
            self.body_csrf = json.loads(a["hx-headers"]).get("X-CSRFToken", "")
        if tag == "a" and "href" in a:
            self.links.append(self._resolve(a["href"]))
        if "hx-get" in a and tag != "form":
            self.hx_links.append(self._resolve(a["hx-get"]))
            self.hx_targets[self.hx_links[-1]] = _target_id(a.get("hx-target", ""))
        if tag == "form":
            method = (a.get("method") or "get").lower()
            hx_post = a.get("hx-post")
            if hx_post is not None:
                method = "post"
            action = hx_post if hx_post is not None else a.get("hx-get", a.get("action", ""))
            self._form = Form(
                method=method,
                action=self._resolve(action or ""),
                htmx=hx_post is not None,
                htmx_get=hx_post is None and "hx-get" in a,
                hx_target=_target_id(a.get("hx-target", "")),
                submittable="hx-trigger" in a,
            )
            self.forms.append(self._form)
        elif tag in ("button", "input") and a.get("hx-post") is not None and self._form is None:
            # A lone htmx button posts its hx-vals; treat it as a form of those values.
            values = json.loads(a["hx-vals"]) if a.get("hx-vals") else {}
            form = Form(method="post", action=self._resolve(a["hx-post"]), htmx=True, submittable=True)
            form.fields = [Field(name=k, kind="hidden", value=str(v)) for k, v in values.items()]
            self.forms.append(form)
        elif tag == "input" and self._form is not None:
            kind = (a.get("type") or "text").lower()
            if kind in NOT_SUBMITTED:
                self._form.submittable |= kind in ("submit", "image")
                if kind != "reset" and self._form.submit is None and a.get("name"):
                    self._form.submit = (a["name"], a.get("value", ""))
            elif a.get("name"):
                self._form.fields.append(
                    Field(
                        name=a["name"],
                        kind=kind,
                        value=a.get("value", ""),
                        checked="checked" in a,
                        element_id=a.get("id", ""),
                        required="required" in a,
                    )
                )
        elif tag == "button" and self._form is not None:
            if (a.get("type") or "submit").lower() == "submit":
                self._form.submittable = True
                if self._form.submit is None and a.get("name"):
                    self._form.submit = (a["name"], a.get("value", ""))
        elif tag == "textarea" and self._form is not None and a.get("name"):
            self._textarea = Field(
                name=a["name"], kind="textarea", element_id=a.get("id", ""), required="required" in a
            )
            self._form.fields.append(self._textarea)
        elif tag == "select" and self._form is not None and a.get("name"):
            self._select = Field(name=a["name"], kind="select", element_id=a.get("id", ""), required="required" in a)
            self._form.fields.append(self._select)
        elif tag == "option" and self._select is not None:
            self._option_selected = "selected" in a
            self._option_pending = "value" not in a
            if "value" in a:
                self._add_option(a["value"])
        if tag == "label":
            self._label_for = a.get("for", "")
            self._label_text = []

    def _add_option(self, value: str) -> None:
        assert self._select is not None
        self._select.options.append(value)
        if self._option_selected:
            self._select.selected.append(value)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if tag in self.unclosed:
            # Implicitly closed elements (p, li, td, option...) are popped with their parent, as browsers do.
            while self.unclosed and self.unclosed.pop() != tag:
                pass
        else:
            self.stray_end_tags.append(tag)
        if self._error_depth and len(self.unclosed) < self._error_depth:
            text = " ".join("".join(self._error_text).split())
            if text:
                self.errors.append(text)
            self._error_depth = 0
        if tag == "form":
            self._form = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None
        elif tag == "option":
            self._option_pending = False
        elif tag == "label" and self._label_for is not None:
            if self._label_for:
                self.labels[self._label_for] = " ".join("".join(self._label_text).split())
            self._label_for = None

    def handle_data(self, data: str) -> None:
        if ("{%" in data or "{#" in data) and not {"script", "style"} & set(self.unclosed):
            self.template_leaks.append(" ".join(data.split())[:80])
        if self._error_depth:
            self._error_text.append(data)
        if self._textarea is not None:
            self._textarea.value += data
        if self._select is not None and self._option_pending and data.strip():
            self._add_option(data.strip())
            self._option_pending = False
        if self._label_for is not None:
            self._label_text.append(data)

    @property
    def dangling_refs(self) -> list[str]:
        """`attribute=value` of each reference to an id the page does not have (a label for nothing, a datalist or
        an hx-target that is not there)."""
        dangling = []
        for tag, attr, value in self.refs:
            if attr == "form" and tag == "form":
                continue  # <form form=...> is not a thing; skip rather than guess
            names = re.findall(r"#([\w-]+)", value) if attr in HTMX_SELECTORS else value.split()
            dangling += [f"{attr}={name}" for name in names if name not in self.ids]
        return sorted(set(dangling))

    @property
    def duplicate_ids(self) -> list[str]:
        return sorted(element_id for element_id, n in self.ids.items() if n > 1)


def _target_id(selector: str) -> str:
    """The id htmx sends as HX-Target for an `hx-target="#id"`; "" for other selectors (this, closest ...)."""
    return selector[1:] if re.fullmatch(r"#[\w-]+", selector) else ""


def parse_page(url: str, html: str) -> PageParser:
    parser = PageParser(url)
    parser.feed(html)
    parser.close()
    return parser


def url_pattern(path_and_query: str, *, opaque_params: frozenset[str]) -> str:
    """A URL with its ids generalised: digit runs in the path and in query values become `N`, and the values of
    `opaque_params` (page cursors) become `*`. Links of one pattern render the same view the same way."""
    parts = urlsplit(path_and_query)
    path = re.sub(r"\d+", "N", parts.path)
    query = []
    for pair in sorted(p for p in parts.query.split("&") if p):
        key, _, value = pair.partition("=")
        query.append(f"{key}=*" if key in opaque_params else f"{key}={re.sub(r'[0-9]+', 'N', value)}")
    return path + ("?" + "&".join(query) if query else "")
