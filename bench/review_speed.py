"""Review at the speed of thought (issue 15 §6): from the expert's `r` ("mark reviewed & next") to the next trace on
screen, in Chromium against gunicorn + PostgreSQL at 1,000,000 traces.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python bench/review_speed.py [--steps 60] [--rebuild]

The database is bench/pages.py's data set (1M traces, 100k reviewed and labelled) in a database of its own,
`evalstudio_bench_review_speed`, built on the first run and reused. Two browser contexts of one Chromium review the
random queue (each its own source: slices of 200,000 traces alike), taking turns step by step so both see the same
machine load: the baseline with prefetch switched off (`localStorage["evalstudio.prefetch"] = "off"`: the form
posts and the next page loads, as before) and the page fetching the next trace ahead and swapping it in. Before
each `r` the bench waits until the page is ready (and, with prefetch, holds the page ahead), as an expert reading a
trace for a few seconds would.

"Shown" is the first animation frame in which `#review` names the next trace (a script added to every document
watches it frame by frame), measured from the key event's own time stamp; both on the browser's wall clock.
Blind re-reviews are switched off in the bench project (a re-review is a full page load by design, not a step
to time). Goal: p95 under 100 ms with prefetch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "evalstudio_bench_review_speed"
GOAL_MS = 100.0
WARMUP = 5
SCRATCH = ROOT / "bench" / "out" / "review_speed"

# Added to every document before its own scripts: when `#review` first names a trace other than the one last seen,
# the time since the `r` key goes into sessionStorage (which survives the full page loads of the baseline).
WATCH_SCRIPT = """
(() => {
  const now = () => performance.timeOrigin + performance.now();
  document.addEventListener("keydown", (event) => {
    if (event.key === "r") sessionStorage.setItem("bench.keyAt", String(performance.timeOrigin + event.timeStamp));
  }, true);
  let seen = sessionStorage.getItem("bench.seen");
  function tick() {
    const review = document.getElementById("review");
    const id = review && review.dataset.traceId;
    if (id && id !== seen) {
      seen = id;
      sessionStorage.setItem("bench.seen", id);
      const at = sessionStorage.getItem("bench.keyAt");
      if (at) {
        const shown = JSON.parse(sessionStorage.getItem("bench.shown") || "[]");
        shown.push(now() - Number(at));
        sessionStorage.setItem("bench.shown", JSON.stringify(shown));
        sessionStorage.removeItem("bench.keyAt");
      }
    }
    requestAnimationFrame(tick);
  }
  requestAnimationFrame(tick);
})();
"""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _prepare(bench_url: str) -> None:
    from bench.pages import populate, setup_django

    setup_django(bench_url)
    populate()
    from annotation.models import Project

    Project.objects.filter(slug="bench").update(rereview_rate=0.0)
    from django.db import connections

    connections.close_all()


# Each mode walks its own slice of the random queue (as big as the other), so neither reviews the trace the other
# has ahead.
QUEUES = {False: "?order=random&source=synthetic", True: "?order=random&source=staging"}


def _login(browser, base: str, prefetch: bool):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(30_000)
    context.add_init_script(WATCH_SCRIPT)
    page = context.new_page()
    page.goto(f"{base}/accounts/login/?next=/projects/bench/review/{quote(QUEUES[prefetch])}")
    page.fill('input[name="username"]', "bench-expert")
    page.fill('input[name="password"]', "bench")
    page.click('button[type="submit"]')
    page.wait_for_selector("#review[data-keyboard-ready]")
    if not prefetch:
        page.evaluate("localStorage.setItem('evalstudio.prefetch', 'off')")
        page.reload()
        page.wait_for_selector("#review[data-keyboard-ready]")
    return page


def _step(page, prefetch: bool) -> None:
    """One `r`: wait until the page is ready (and holds the page ahead), press, wait for the next trace."""
    ready = "#review[data-keyboard-ready][data-prefetched]" if prefetch else "#review[data-keyboard-ready]"
    page.wait_for_selector(ready)
    count = page.evaluate("JSON.parse(sessionStorage.getItem('bench.shown') || '[]').length")
    page.keyboard.press("r")
    page.wait_for_function(
        "n => JSON.parse(sessionStorage.getItem('bench.shown') || '[]').length > n", arg=count, polling=50
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="timed `r` steps per mode (after a warm-up)")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()

    from bench.pages import bench_urls, ensure_database

    admin, bench = bench_urls(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"), BENCH_DB)
    ensure_database(admin, args.rebuild, BENCH_DB)
    _prepare(bench)

    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
    from tests.chaos.processes import Gunicorn, base_env

    SCRATCH.mkdir(parents=True, exist_ok=True)
    env = base_env(DATABASE_URL=bench, LOG_LEVEL="WARNING")
    # DEBUG is off, so pages name their static files through the manifest: collect them once, as a deploy does.
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    web = Gunicorn(env, log=SCRATCH / "gunicorn.log", workers=2, timeout=120).start()
    shown: dict[bool, list[float]] = {}
    try:
        base = f"http://127.0.0.1:{web.port}"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            pages = {False: _login(browser, base, prefetch=False), True: _login(browser, base, prefetch=True)}
            for _ in range(WARMUP + args.steps):
                for prefetch, page in pages.items():
                    _step(page, prefetch)
            for prefetch, page in pages.items():
                shown[prefetch] = page.evaluate("JSON.parse(sessionStorage.getItem('bench.shown'))")[WARMUP:]
            swapped = pages[True].evaluate("document.getElementById('review').dataset.traceId")
            browser.close()
    finally:
        web.kill()

    print(f"\n`r` → next trace shown, Chromium, gunicorn (2 workers) + PostgreSQL, 1M traces, {args.steps} steps")
    print(f"{'mode':<34}{'median ms':>11}{'p95 ms':>9}{'max ms':>9}")
    rows = {False: "baseline: full page load", True: "prefetch + swap"}
    for prefetch, label in rows.items():
        values = shown[prefetch]
        print(f"{label:<34}{statistics.median(values):>11.1f}{_percentile(values, 0.95):>9.1f}{max(values):>9.1f}")
    ratio_median = statistics.median(shown[False]) / statistics.median(shown[True])
    ratio_p95 = _percentile(shown[False], 0.95) / _percentile(shown[True], 0.95)
    print(f"speed-up: {ratio_median:.1f}× median, {ratio_p95:.1f}× p95 (last trace shown by swap: {swapped})")
    p95 = _percentile(shown[True], 0.95)
    print(f"goal p95 < {GOAL_MS:.0f} ms with prefetch: {'met' if p95 < GOAL_MS else 'MISSED'} ({p95:.1f} ms)")
    return 0 if p95 < GOAL_MS else 1


if __name__ == "__main__":
    sys.exit(main())
