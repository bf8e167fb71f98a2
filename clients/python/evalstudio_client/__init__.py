"""A small client for EvalStudio's read API (docs/api-read.md).

    from evalstudio_client import Client
    es = Client("https://evalstudio.example.com", token="es_...")
    df = es.traces("acme", reviewed="yes").to_pandas()
    es.judgments(42).to_pandas()
    es.monitoring_series("acme", criterion="factual", bucket="day", window="30d").to_pandas()

Every call raises `EvalStudioError` with the server's `detail` (and the HTTP status) when the server refuses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

__all__ = ["Client", "EvalStudioError", "Judgments", "MonitoringSeries", "Traces"]
__version__ = "0.1.0"

PAGE_SIZE = 500


class EvalStudioError(Exception):
    """The server refused a request: `status` is the HTTP status, `detail` the server's explanation."""

    def __init__(self, status: int, detail: str, url: str) -> None:
        super().__init__(f"{status} from {url}: {detail}")
        self.status = status
        self.detail = detail
        self.url = url


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError("to_pandas() needs pandas: pip install 'evalstudio-client[pandas]'") from None
    return pandas


class _Paged:
    """The items of every page of a cursor-paged route, fetched as they are iterated (once: cached after)."""

    key = ""

    def __init__(self, client: Client, path: str, params: dict[str, Any]) -> None:
        self._client = client
        self._path = path
        self._params = params
        self._items: list[dict[str, Any]] | None = None

    def _pages(self) -> Iterator[dict[str, Any]]:
        cursor = None
        while True:
            params = dict(self._params)
            if cursor:
                params["cursor"] = cursor
            page = self._client._get(self._path, params)
            yield page
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._items is not None:
            yield from self._items
            return
        items: list[dict[str, Any]] = []
        for page in self._pages():
            for item in page[self.key]:
                items.append(item)
                yield item
        self._items = items

    def all(self) -> list[dict[str, Any]]:
        return list(self)


class Traces(_Paged):
    key = "traces"

    def to_pandas(self) -> Any:
        """One row per trace; `labels`, `notes`, `failure_modes` stay lists, plus a `label.<criterion>` column
        (pass/fail) and a `critique.<criterion>` column per criterion, for grouping."""
        rows = []
        for trace in self:
            row = dict(trace)
            for label in trace.get("labels", []):
                row[f"label.{label['criterion']}"] = label["verdict"]
                row[f"critique.{label['criterion']}"] = label["critique"]
            rows.append(row)
        return _pandas().DataFrame(rows)


class Judgments(_Paged):
    key = "judgments"

    def to_pandas(self) -> Any:
        return _pandas().DataFrame(self.all())


class MonitoringSeries:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.judge = data["judge"]
        self.buckets = data["buckets"]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.buckets)

    def to_pandas(self) -> Any:
        """One row per bucket, indexed by its start (UTC); each interval as `<rate>_low` / `<rate>_high`."""
        pd = _pandas()
        rows = []
        for bucket in self.buckets:
            row = {k: v for k, v in bucket.items() if not k.endswith("_ci") and k != "corrected_flags"}
            for rate in ("observed", "corrected"):
                low, high = bucket[f"{rate}_ci"] or (None, None)
                row[f"{rate}_low"], row[f"{rate}_high"] = low, high
            rows.append(row)
        frame = pd.DataFrame(rows)
        if not frame.empty:
            frame["start"] = pd.to_datetime(frame["start"], utc=True)
            frame = frame.set_index("start")
        return frame


class Client:
    """`Client(base_url, token)`: the project's API token (Settings → API tokens), sent as a bearer token."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0, **httpx_options: Any) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/api/v1",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            **httpx_options,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        response = self._http.get(path, params={k: v for k, v in params.items() if v is not None})
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise EvalStudioError(response.status_code, str(detail), str(response.url))
        return response.json()

    def traces(self, project: str, *, page_size: int = PAGE_SIZE, **filters: Any) -> Traces:
        """Every trace of the project (all pages), with labels, critiques, notes and failure modes. Filters as the
        trace list: source=, meta="key=value", reviewed="yes"|"no", mode=<failure mode id>."""
        return Traces(self, f"/projects/{project}/traces", {"limit": page_size, **filters})

    def judgments(self, run_id: int, *, page_size: int = PAGE_SIZE, agrees: str | None = None) -> Judgments:
        """Every judgment of a judge run beside the expert's label; agrees="no" for the disagreements only."""
        return Judgments(self, f"/judge-runs/{run_id}/judgments", {"limit": page_size, "agrees": agrees})

    def monitoring_series(
        self, project: str, *, criterion: str, bucket: str = "hour", window: str = "24h"
    ) -> MonitoringSeries:
        params = {"criterion": criterion, "bucket": bucket, "window": window}
        return MonitoringSeries(self._get(f"/projects/{project}/monitoring/series", params))
