"""The golden set: each change is a version, and every old version can still be read back exactly."""

from __future__ import annotations

import pytest

from annotation.services import DomainError
from suites.golden import golden_add, golden_entries, golden_remove, golden_set_for
from tests.factories import make_project, make_trace

pytestmark = pytest.mark.django_db


def members(project, version=None):
    return [(e.trace.external_id, e.reason) for e in golden_entries(project=project, version=version)]


def test_every_change_is_a_version_and_old_versions_read_back_unchanged(project, expert):
    a, b, c = (make_trace(project=project, external_id=x) for x in "abc")
    assert golden_add(project=project, traces=[a, b], reason="core_feature", user=expert) == 1
    assert golden_add(project=project, traces=[a], reason="core_feature", user=expert) == 1  # no change, no version
    assert golden_add(project=project, traces=[c], reason="edge_case", user=expert) == 2
    assert golden_remove(project=project, traces=[a], user=expert) == 3
    assert golden_add(project=project, traces=[b], reason="past_regression", user=expert) == 4

    assert members(project, 1) == [("a", "core_feature"), ("b", "core_feature")]
    assert members(project, 2) == [("a", "core_feature"), ("b", "core_feature"), ("c", "edge_case")]
    assert members(project, 3) == [("b", "core_feature"), ("c", "edge_case")]
    assert members(project) == [("c", "edge_case"), ("b", "past_regression")]
    versions = list(golden_set_for(project).versions.values_list("number", "size", "summary"))
    assert versions[0] == (4, 2, "re-filed 1 as past regression")
    assert versions[-1] == (1, 2, "added a, b (core feature)")


def test_bad_requests_name_what_is_wrong(project):
    other = make_trace(project=make_project(), external_id="elsewhere")
    with pytest.raises(DomainError, match="Not traces of"):
        golden_add(project=project, traces=[other], reason="edge_case")
    with pytest.raises(DomainError, match="Unknown reason 'vibes'"):
        golden_add(project=project, traces=[make_trace(project=project)], reason="vibes")
    with pytest.raises(DomainError, match="versions 1 to 0, not 3"):
        golden_entries(project=project, version=3)
