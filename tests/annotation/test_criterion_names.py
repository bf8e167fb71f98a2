"""Criteria named after a vague quality ("helpfulness", "quality", "coherence", "relevance") get a note asking for a
concrete pass/fail definition, on the criterion's page and on the project page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.criterion_names import generic_quality
from tests.factories import make_criterion


@pytest.mark.parametrize(
    ("name", "quality"),
    [
        ("helpfulness", "helpfulness"),
        ("Helpful", "helpfulness"),
        ("unhelpful", "helpfulness"),
        ("isHelpful", "helpfulness"),
        ("quality", "quality"),
        ("Overall answer quality", "quality"),
        ("high_quality_v2", "quality"),
        ("coherence", "coherence"),
        ("incoherent", "coherence"),
        ("relevance", "relevance"),
        ("response-relevancy-score", "relevance"),
        ("irrelevant", "relevance"),
        ("helpful and relevant", "helpfulness"),
        ("grounded", None),
        ("resolves_request", None),
        ("plain_text", None),
        ("relevant_sources_cited", None),
        ("helpline_number_given", None),
        ("", None),
        ("overall score", None),
    ],
)
def test_generic_names_are_the_four_vague_qualities_and_their_close_variants(name: str, quality: str | None):
    assert generic_quality(name) == quality


NOTE = "names a quality"


@pytest.mark.django_db
def test_the_criterion_page_and_the_project_page_ask_a_generic_criterion_for_a_concrete_definition(
    project, expert_client
):
    vague = make_criterion(project=project, name="helpfulness", definition="")
    concrete = make_criterion(project=project, name="grounded")
    page = expert_client.get(reverse("criterion_edit", args=[project.slug, vague.pk])).content.decode()
    assert "“helpfulness” names a quality (helpfulness), not a check." in page
    assert "Write a definition that says concretely" in page
    assert NOTE not in expert_client.get(reverse("criterion_edit", args=[project.slug, concrete.pk])).content.decode()
    overview = expert_client.get(reverse("project_detail", args=[project.slug])).content.decode()
    assert overview.count(NOTE) == 1 and "“helpfulness” names a quality" in overview


@pytest.mark.django_db
def test_a_new_criterion_with_a_generic_name_is_created_and_the_form_says_so_while_it_is_edited(project, expert_client):
    url = reverse("criterion_new", args=[project.slug])
    # A form sent back (the name is taken) keeps the note beside the name.
    make_criterion(project=project, name="Answer quality")
    page = expert_client.post(url, {"name": "Answer quality", "definition": ""}).content.decode()
    assert "“Answer quality” names a quality (quality)" in page
    response = expert_client.post(url, {"name": "coherent", "definition": "Pass when it reads well."})
    assert response.status_code == 302  # a note, never a refusal
    overview = expert_client.get(reverse("project_detail", args=[project.slug])).content.decode()
    assert (
        "“coherent” names a quality (coherence)" in overview and "Make sure the definition says concretely" in overview
    )
