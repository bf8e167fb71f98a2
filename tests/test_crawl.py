"""The demo project walked link by link, as its users would click through it, with Django's test client.

From the project's pages every internal link the app draws (`<a href>`, `hx-get`, GET forms as drawn) is followed
breadth first, each URL once, and a few samples per URL pattern (links that differ only in ids or page cursors render
the same view). The walks: the demo expert, a viewer member (read-only), a signed-in outsider, who must never see
the project (404, as for a missing project: annotation/access.py), an anonymous visitor (sent to log in), and the
expert again on a project just created, where every count is zero. The POST forms met on the way are submitted
with CSRF checks enforced, each in a savepoint rolled back after it: empty (the page must say what is missing) and as
drawn (the page it leads to, and the new links that page draws, must answer).

The demo is loaded once for the module and each walk runs once in a module fixture: about 20 s in all."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Q
from django.http import HttpResponseBase
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings

from annotation.models import Project, Role, Trace
from tests.crawl_html import Form, parse_page, url_pattern
from tests.factories import add_member, make_criterion, make_project, make_user

# Marked so that run alone the module still gets pytest-django's test database (it sets one up only for marked tests):
# the walks themselves run in module fixtures, inside the demo's transaction.
pytestmark = pytest.mark.django_db

START = ["/projects/", "/projects/demo/"]
# A few traces of each pattern (the demo has 1,205, and each shape is a start URL); more of the other objects, whose
# pages differ by kind (an LLM judge's page has a prompt preview, an assertion's does not).
SAMPLES_PER_PATTERN = 8
TRACE_SAMPLES_PER_PATTERN = 3
TRACE_PATTERNS = ("/projects/demo/traces/", "/projects/demo/t/", "/projects/demo/golden/t/")
# Page cursors: each value is a different page of the same view.
OPAQUE_PARAMS = frozenset({"after", "before", "cursor", "page"})
# Generous: a page over this many queries has an N+1 (the worst pages of the demo are reported by the test).
MAX_QUERIES = 60
HTMX_STOP_POLLING = 286  # django_htmx's HttpResponseStopPolling: a finished job's progress fragment
# Not pages of the app: Django's admin has its own login, logging out is a POST of the top bar.
NOT_WALKED = ("/admin/", "/accounts/logout/")


@dataclass
class Visit:
    url: str
    htmx: bool
    referrer: str
    status: int = 0
    queries: int = 0
    content_type: str = ""
    problems: list[str] = field(default_factory=list)


@dataclass
class Walk:
    client: Client  # the walker's client, whose CSRF cookie the forms' tokens were made for
    visits: list[Visit] = field(default_factory=list)
    forms: list[tuple[str, Form, str]] = field(default_factory=list)  # (page, form, body CSRF token)
    skipped: Counter[str] = field(default_factory=Counter)  # pattern -> links not walked beyond the samples

    def problems(self) -> list[str]:
        return [f"{v.url}{' (htmx)' if v.htmx else ''} from {v.referrer}: {p}" for v in self.visits for p in v.problems]

    def worst(self, n: int = 5) -> list[tuple[int, str]]:
        return sorted(((v.queries, v.url) for v in self.visits), reverse=True)[:n]


def _internal(url: str) -> str | None:
    """The path and query of an internal link, without its fragment; None for another site or a non-HTTP link."""
    parts = urlsplit(url)
    if parts.scheme not in ("", "http", "https") or parts.netloc not in ("", "testserver"):
        return None
    return urlunsplit(("", "", parts.path, parts.query, ""))


def _request(
    client: Client, method: str, url: str, data: dict[str, list[str]] | None = None, **headers: str
) -> tuple[HttpResponseBase, int]:
    """One request in a savepoint rolled back after it, so that every page is drawn from the same data and a
    failing view cannot poison the module's transaction; returns the response and its query count."""
    with transaction.atomic():
        with CaptureQueriesContext(connection) as queries:
            if method == "get":
                response = client.get(url, headers=headers)
            else:
                response = client.post(url, data=data or {}, headers=headers)
            if response.streaming:
                response.content_bytes = b"".join(response.streaming_content)
            else:
                response.content_bytes = response.content
        transaction.set_rollback(True)
    return response, len(queries)


def _exception(response: HttpResponseBase) -> str:
    exc_info = getattr(response, "exc_info", None)
    return f": {exc_info[0].__name__}: {exc_info[1]}" if exc_info else ""


def _start_urls() -> list[str]:
    """The project's list and overview, and a trace of each shape the demo holds: the demo's trace ids all look
    alike, so the samples of the trace-page pattern alone could miss a shape (RAG context, a chat, an agent run)."""
    traces = Trace.objects.filter(project__slug="demo").order_by("pk")
    no_context = Q(context__isnull=True) | Q(context=[])
    shapes = [
        traces.exclude(no_context),
        traces.exclude(session_id="").filter(task_id=""),
        traces.exclude(task_id=""),
        traces.filter(no_context, Q(messages__isnull=True) | Q(messages=[]), session_id=""),
    ]
    return START + [f"/projects/demo/traces/{shape.first().external_id}/" for shape in shapes]


def walk(client: Client, *, start: list[str] | None = None, scope: str = "/") -> Walk:
    """Breadth first from the start URLs (the demo's by default) over every internal link drawn under `scope`, each
    URL once, SAMPLES_PER_PATTERN per pattern."""
    result = Walk(client=client)
    start = start or _start_urls()
    queue: list[tuple[str, bool, str]] = [(url, False, "start") for url in start]
    hx_targets: dict[str, str] = {}  # the HX-Target htmx sends with an hx-get URL, by the page that drew it
    seen = {(url, False) for url in start}
    per_pattern: Counter[str] = Counter()
    while queue:
        url, htmx, referrer = queue.pop(0)
        visit = Visit(url=url, htmx=htmx, referrer=referrer)
        result.visits.append(visit)
        headers = {"HX-Request": "true", "HX-Target": hx_targets.get(url, "")} if htmx else {}
        response, visit.queries = _request(client, "get", url, **headers)
        visit.status = response.status_code
        visit.content_type = response.get("Content-Type", "")
        links: list[tuple[str, bool]] = []
        if 300 <= visit.status < 400:
            links.append((response["Location"], False))
        elif visit.status != 200 and not (htmx and visit.status == HTMX_STOP_POLLING):
            visit.problems.append(f"{visit.status}{_exception(response)}")
        if visit.status == 200 and visit.content_type.startswith("text/html"):
            page = parse_page(url, response.content_bytes.decode())
            if page.duplicate_ids:
                visit.problems.append(f"duplicate ids {page.duplicate_ids}")
            if not htmx and page.dangling_refs:
                # A fragment may point into the page it is swapped into; a whole page has every id it names.
                visit.problems.append(f"names ids it does not have: {page.dangling_refs}")
            if page.template_leaks:
                visit.problems.append(f"template syntax shown as text: {page.template_leaks}")
            links += [(link, False) for link in page.links]
            links += [(link, True) for link in page.hx_links]
            hx_targets.update({_internal(link) or link: target for link, target in page.hx_targets.items()})
            for form in page.forms:
                if form.method == "get":
                    links.append((form.get_url(), form.htmx_get))
                    if form.htmx_get:
                        hx_targets[_internal(form.get_url()) or ""] = form.hx_target
                else:
                    result.forms.append((url, form, page.body_csrf))
        for link, link_htmx in links:
            target = _internal(link)
            if target is None or not target.startswith(scope) or target.startswith(NOT_WALKED):
                continue
            if (target, link_htmx) in seen:
                continue
            if target.startswith("/static/"):
                if not finders.find(target.removeprefix("/static/")):
                    visit.problems.append(f"links to a missing static file {target}")
                continue
            seen.add((target, link_htmx))
            pattern = ("hx " if link_htmx else "") + url_pattern(target, opaque_params=OPAQUE_PARAMS)
            limit = TRACE_SAMPLES_PER_PATTERN if target.startswith(TRACE_PATTERNS) else SAMPLES_PER_PATTERN
            if per_pattern[pattern] >= limit:
                result.skipped[pattern] += 1
                continue
            per_pattern[pattern] += 1
            queue.append((target, link_htmx, url))
    return result


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker) -> Iterator[Project]:
    """The demo loaded once for this module, inside a transaction rolled back after its last test. The walks run
    in module fixtures, before the function-scoped settings of tests/conftest.py: the same settings here."""
    plain_static = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with (
        django_db_blocker.unblock(),
        override_settings(STORAGES=plain_static, EVALSTUDIO_API_RATE_PER_TOKEN=None, EVALSTUDIO_API_RATE_PER_IP=None),
        transaction.atomic(),
    ):
        with override_settings(DEBUG=True):  # the demo login exists only with DEBUG on; the pages are walked off
            call_command("load_demo", stdout=io.StringIO())
        project = Project.objects.get(slug="demo")
        add_member(project, make_user("crawl-viewer"), Role.VIEWER)
        make_user("crawl-outsider")
        yield project
        transaction.set_rollback(True)


@pytest.fixture
def new_project_walk(demo, django_db_blocker) -> Iterator[Walk]:
    """A project just created, with one criterion and nothing else: the first pages a team sees, where every count
    is zero. In a savepoint of its own, rolled back after the test."""
    with django_db_blocker.unblock(), transaction.atomic():
        project = make_project(slug="fresh", name="Fresh project", expert=User.objects.get(username="demo"))
        make_criterion(project=project, name="correct")
        yield walk(_client("demo", enforce_csrf_checks=True), start=["/projects/fresh/"], scope="/projects/fresh/")
        transaction.set_rollback(True)


def _client(username: str, **kwargs) -> Client:
    client = Client(raise_request_exception=False, **kwargs)
    client.force_login(User.objects.get(username=username))
    return client


@pytest.fixture(scope="module")
def expert_walk(demo, django_db_blocker) -> Walk:
    with django_db_blocker.unblock():
        return walk(_client("demo", enforce_csrf_checks=True))


def _form_key(form: Form) -> str:
    return (
        url_pattern(_internal(form.action) or form.action, opaque_params=OPAQUE_PARAMS)
        + " "
        + ",".join(sorted({f.name for f in form.fields}))
    )


@dataclass
class Outcome:
    status: int
    redirect: str  # where the POST sent the browser (Location or HX-Redirect), "" when it answered itself
    final_status: int  # the status of the page the user ends on
    errors: list[str]  # what that page says went wrong
    duplicate_ids: list[str]
    exception: str


def submit_empty(client: Client, form: Form, body_csrf: str) -> Outcome:
    """POST the form with its fields cleared, as htmx or a browser would, and read the page the user ends on (the
    redirect's target in the same savepoint, so that it shows what the POST did)."""
    headers = {"HX-Request": "true", "X-CSRFToken": body_csrf} if form.htmx else {}
    with transaction.atomic():
        response = client.post(_internal(form.action), data=_pairs_to_dict(form.empty_data()), headers=headers)
        redirect = _redirect_of(response)
        final, url = response, _internal(form.action)
        if redirect:
            url = redirect
            final = client.get(url)
        errors, duplicate_ids = [], []
        if final.get("Content-Type", "").startswith("text/html"):
            page = parse_page(url, final.content.decode())
            errors, duplicate_ids = page.errors, page.duplicate_ids
        transaction.set_rollback(True)
    return Outcome(response.status_code, redirect, final.status_code, errors, duplicate_ids, _exception(response))


def _pairs_to_dict(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    data: dict[str, list[str]] = {}
    for name, value in pairs:
        data.setdefault(name, []).append(value)
    return data


def _form_problems(walk_: Walk, *, role: str) -> tuple[list[str], int]:
    """Each distinct POST form of the walk (one per action pattern and field names) submitted empty: the problems
    found, and how many forms were tried."""
    problems: list[str] = []
    tried: set[str] = set()
    for page, form, body_csrf in walk_.forms:
        target = _internal(form.action)
        key = _form_key(form)
        if target is None or target.startswith(NOT_WALKED) or key in tried or not form.submittable:
            # A form with no submit control cannot be sent (a viewer's coding board is a table in a form).
            continue
        tried.add(key)
        where = f"{role}: form {target} on {page}"
        if not form.htmx and not form.has_csrf_input:
            problems.append(f"{where}: no csrfmiddlewaretoken")
        if form.htmx and not body_csrf:
            problems.append(f"{where}: htmx form on a page without the CSRF header on <body>")
        outcome = submit_empty(walk_.client, form, body_csrf)
        if outcome.status >= 500 or outcome.final_status >= 500:
            problems.append(f"{where}: {outcome.status}/{outcome.final_status}{outcome.exception}")
        elif outcome.status in (403, 404, 405) or outcome.final_status in (403, 404, 405):
            problems.append(f"{where}: {outcome.status}/{outcome.final_status} for a form the page drew")
        elif outcome.duplicate_ids:
            problems.append(f"{where}: duplicate ids {outcome.duplicate_ids} on the page it ends on")
        elif any(f.required for f in form.user_fields) and not outcome.errors:
            names = [f.name for f in form.user_fields if f.required]
            problems.append(f"{where}: empty required {names} accepted ({outcome.status}) with nothing said")
    return problems, len(tried)


def _as_drawn_problems(walk_: Walk) -> tuple[list[str], int]:
    """Each distinct POST form submitted as drawn (its default values: the user just presses the button), in a
    savepoint rolled back after it; the page it leads to must answer, and so must the links that page draws which the
    walk had not met (a new version's comparison link, say), one per pattern."""
    problems: list[str] = []
    tried: set[str] = set()
    known = {v.url for v in walk_.visits}
    new_patterns: set[str] = set()
    client = walk_.client
    for page, form, body_csrf in walk_.forms:
        target = _internal(form.action)
        key = _form_key(form)
        if target is None or target.startswith(NOT_WALKED) or key in tried or not form.submittable:
            continue
        tried.add(key)
        where = f"form {target} on {page}, as drawn"
        headers = {"HX-Request": "true", "X-CSRFToken": body_csrf} if form.htmx else {}
        with transaction.atomic():
            response = client.post(target, data=_pairs_to_dict(form.default_data()), headers=headers)
            redirect = _redirect_of(response)
            if response.status_code >= 500 or response.status_code in (403, 404, 405):
                problems.append(f"{where}: {response.status_code}{_exception(response)}")
            elif redirect:
                final = client.get(redirect)
                if final.status_code != 200:
                    problems.append(f"{where}: leads to {redirect}, {final.status_code}{_exception(final)}")
                elif final.get("Content-Type", "").startswith("text/html"):
                    drawn = parse_page(redirect, final.content.decode())
                    if drawn.duplicate_ids:
                        problems.append(f"{where}: duplicate ids {drawn.duplicate_ids} on {redirect}")
                    links = [(link, False) for link in drawn.links] + [(link, True) for link in drawn.hx_links]
                    for link, htmx in links:
                        url = _internal(link)
                        if url is None or url in known or url.startswith((*NOT_WALKED, "/static/")):
                            continue
                        pattern = ("hx " if htmx else "") + url_pattern(url, opaque_params=OPAQUE_PARAMS)
                        if pattern in new_patterns:
                            continue
                        new_patterns.add(pattern)
                        answer = client.get(url, headers={"HX-Request": "true"} if htmx else {})
                        if answer.status_code >= 400 and answer.status_code != HTMX_STOP_POLLING:
                            problems.append(f"{where}: {redirect} links {url}, {answer.status_code}")
            transaction.set_rollback(True)
    return problems, len(tried)


def _redirect_of(response: HttpResponseBase) -> str:
    """Where a response sends the browser (Location, or htmx's HX-Redirect), as an internal path; "" otherwise."""
    location = response.get("HX-Redirect", "") or (
        response.get("Location", "") if response.status_code in (301, 302, 303) else ""
    )
    return (_internal(location) or "") if location else ""


@pytest.fixture(scope="module")
def viewer_walk(demo, django_db_blocker) -> Walk:
    with django_db_blocker.unblock():
        return walk(_client("crawl-viewer", enforce_csrf_checks=True))


def test_expert_reaches_every_page_the_app_links_without_an_error(expert_walk):
    problems = expert_walk.problems()
    assert not problems, "\n".join(problems)
    # The walk went everywhere: every section of the project's navigation, and pages of its objects.
    reached = {url_pattern(v.url, opaque_params=OPAQUE_PARAMS) for v in expert_walk.visits}
    for section in (
        "review",
        "sessions/N",
        "traces/hb-N",
        "failure-modes/N",
        "criteria/N",
        "judges/N",
        "judges/runs/N",
        "golden",
        "suites/N",
        "monitoring/N",
        "monitoring/alerts/N",
        "agents",
        "reliability",
    ):
        assert f"/projects/demo/{section}/" in reached, section
    assert len(expert_walk.visits) > 150


def test_a_new_project_with_nothing_in_it_answers_every_link_and_form(new_project_walk, django_db_blocker):
    problems = new_project_walk.problems()
    with django_db_blocker.unblock():
        problems += _form_problems(new_project_walk, role="expert, new project")[0]
        problems += _as_drawn_problems(new_project_walk)[0]
    assert not problems, "\n".join(problems)
    assert len(new_project_walk.visits) > 20


def test_no_page_runs_more_than_a_bounded_number_of_queries(expert_walk, viewer_walk):
    worst = sorted(expert_walk.worst() + viewer_walk.worst(), reverse=True)[:5]
    print("most queries:", worst)  # for the record (-s): the demo's heaviest pages
    assert worst[0][0] <= MAX_QUERIES, worst
    assert worst[0][0] > 10  # the count is real


def test_expert_post_forms_carry_csrf_and_say_what_is_missing_when_submitted_empty(expert_walk, django_db_blocker):
    with django_db_blocker.unblock():
        problems, tried = _form_problems(expert_walk, role="expert")
    assert not problems, "\n".join(problems)
    assert tried > 40


def test_expert_post_forms_submitted_as_drawn_lead_to_pages_that_answer(expert_walk, django_db_blocker):
    with django_db_blocker.unblock():
        problems, tried = _as_drawn_problems(expert_walk)
    assert not problems, "\n".join(problems)
    assert tried > 40


def test_viewer_gets_every_page_drawn_for_them_and_no_form_that_fails(viewer_walk, django_db_blocker):
    # Stricter than "200 or 403": a page that forbids the viewer is not linked for them (as the project page does
    # for criteria), and a form they can send does not answer 403.
    problems = viewer_walk.problems()
    with django_db_blocker.unblock():
        form_problems, tried = _form_problems(viewer_walk, role="viewer")
        drawn_problems, _ = _as_drawn_problems(viewer_walk)
    print("viewer forms:", tried)
    problems += form_problems + drawn_problems
    assert not problems, "\n".join(problems)
    assert len(viewer_walk.visits) > 100


def test_outsider_gets_404_for_every_project_url_and_form(demo, expert_walk, django_db_blocker):
    problems: list[str] = []
    project_name = demo.name.encode()
    with django_db_blocker.unblock():
        client = _client("crawl-outsider")
        response, _ = _request(client, "get", "/projects/")
        assert response.status_code == 200 and b"/projects/demo/" not in response.content_bytes
        assert project_name not in response.content_bytes
        urls = [v.url for v in expert_walk.visits if "/projects/demo/" in v.url]
        for url in urls:
            response, _ = _request(client, "get", url)
            if response.status_code != 404 or project_name in response.content_bytes:
                problems.append(f"GET {url}: {response.status_code}")
        actions = {_internal(form.action) for _page, form, _csrf in expert_walk.forms}
        for action in sorted(a for a in actions if a and "/projects/demo/" in a):
            response, _ = _request(client, "post", action)
            if response.status_code != 404:
                problems.append(f"POST {action}: {response.status_code}")
    assert not problems, "\n".join(problems)
    assert len(urls) > 150


def test_the_page_reader_finds_what_the_walks_assert_on():
    """The walks' checks can fail: duplicate ids, template syntax shown as text, error texts, the forms' fields."""
    page = parse_page(
        "/projects/x/a/",
        '<body hx-headers=\'{"X-CSRFToken": "t"}\'><p id="a">{% if x %}</p><div id="a"></div>'
        '<a href="b/#top">b</a><span hx-get="/c/" hx-target="#a, #gone">c</span><label for="nothing">x</label>'
        '<a href="b/#top">b</a><span hx-get="/c/">c</span><ul class="errorlist"><li>Name is required</li></ul>'
        '<form method="post" action="/d/"><input type="hidden" name="csrfmiddlewaretoken" value="k">'
        '<input name="name" required><select name="s"><option value="1">one</option></select>'
        "<button>Go</button></form></body>",
    )
    assert page.duplicate_ids == ["a"] and page.template_leaks == ["{% if x %}"]
    assert page.dangling_refs == ["for=nothing", "hx-target=gone"]
    assert page.links == ["/projects/x/a/b/#top"] * 2 and page.hx_links == ["/c/"] * 2
    assert page.errors == ["Name is required"] and page.body_csrf == "t"
    (form,) = page.forms
    assert form.submittable and form.has_csrf_input and [f.name for f in form.user_fields] == ["name", "s"]
    assert form.empty_data() == [("csrfmiddlewaretoken", "k"), ("name", "")]
    assert url_pattern("/t/12/x?after=abc9&mode=3", opaque_params=OPAQUE_PARAMS) == "/t/N/x?after=*&mode=N"


def test_anonymous_visitors_are_sent_to_log_in_from_every_project_url(expert_walk, django_db_blocker):
    problems: list[str] = []
    with django_db_blocker.unblock():
        client = Client(raise_request_exception=False)
        for url in sorted({v.url for v in expert_walk.visits}):
            response, _ = _request(client, "get", url)
            if url.startswith("/api/"):
                if response.status_code != 401:
                    problems.append(f"GET {url}: {response.status_code}")
            elif response.status_code != 302 or not response["Location"].startswith("/accounts/login/?next="):
                problems.append(f"GET {url}: {response.status_code} {response.get('Location', '')}")
    assert not problems, "\n".join(problems)
