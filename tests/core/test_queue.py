"""Queueing a task no caller may wait for: taken, or refused at once and said so."""

from __future__ import annotations

import logging

from annotation.tasks import taxonomy_recount_task
from core.queue import task_send_now


def test_a_task_the_broker_takes_is_sent_once_without_publish_retries(monkeypatch):
    sent = []
    monkeypatch.setattr(taxonomy_recount_task, "apply_async", lambda **kwargs: sent.append(kwargs))
    assert task_send_now("annotation.tasks.taxonomy_recount_task", 7, "counts", [["source", "production"]])
    assert sent == [{"args": [7, "counts", [["source", "production"]]], "retry": False}]


def test_a_broker_that_refuses_is_logged_and_answered_false(monkeypatch, caplog):
    def refuse(**_kwargs):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(taxonomy_recount_task, "apply_async", refuse)
    with caplog.at_level(logging.WARNING, logger="core.queue"):
        assert task_send_now("annotation.tasks.taxonomy_recount_task", 7, "counts", []) is False
    assert "annotation.tasks.taxonomy_recount_task was not queued (ConnectionRefusedError" in caplog.text


def test_an_unknown_task_name_is_refused_the_same_way(caplog):
    with caplog.at_level(logging.WARNING, logger="core.queue"):
        assert task_send_now("annotation.tasks.no_such_task") is False
    assert "no_such_task was not queued (NotRegistered" in caplog.text
