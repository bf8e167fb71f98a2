"""Clustering notes into suggested groups: pure, no database."""

from __future__ import annotations

import random

import pytest

from annotation.clustering import MAX_GROUPS, ClusteringResult, ClusterParams, cluster_notes

THEMES = {
    "date": [
        "Gives the wrong date for the product launch",
        "wrong date: the launch was in 2019",
        "The date of the merger is wrong",
        "Wrong date for the outage",
        "gives a wrong date again",
    ],
    "refund": [
        "Promises a refund outside the refund policy",
        "refund policy ignored, offers a refund on gift cards",
        "Offers a refund although the policy forbids it",
        "Ignores the refund policy",
    ],
    "tool": [
        "Calls lookup_order with the wrong arguments",
        "lookup_order called with wrong arguments",
        "wrong arguments in the lookup_order tool call",
    ],
}


def themed_notes(seed: int = 1) -> tuple[list[tuple[int, str]], dict[int, str]]:
    rng = random.Random(seed)
    pairs, theme_of = [], {}
    for theme, texts in THEMES.items():
        for text in texts:
            note_id = rng.randrange(1, 10**6)
            while note_id in theme_of:
                note_id = rng.randrange(1, 10**6)
            pairs.append((note_id, text))
            theme_of[note_id] = theme
    return pairs, theme_of


def as_sets(result: ClusteringResult) -> list[set[int]]:
    return [set(group.note_ids) for group in result.groups]


def test_notes_of_one_theme_end_up_together_and_groups_are_sorted_by_size() -> None:
    pairs, theme_of = themed_notes()
    result = cluster_notes(pairs, ClusterParams(distance_threshold=0.85))
    assert [len(g.note_ids) for g in result.groups] == [5, 4, 3]
    for group in result.groups:
        assert len({theme_of[i] for i in group.note_ids}) == 1
    assert result.ungrouped_count == 0
    assert result.input_count == 12


def test_groups_are_named_from_their_distinctive_terms() -> None:
    pairs, _ = themed_notes()
    result = cluster_notes(pairs, ClusterParams(distance_threshold=0.85))
    date, refund, tool = result.groups
    assert "date" in date.top_terms[:3]
    assert "refund" in refund.top_terms[:3] or "policy" in refund.top_terms[:3]
    assert any("arguments" in term or "lookup_order" in term for term in tool.top_terms[:3])
    # Function words never name a group, and a term is not repeated inside a longer one.
    for group in result.groups:
        assert not {"the", "a", "for", "with", "in"} & set(" ".join(group.top_terms).split())
        words = [w for term in group.top_terms for w in term.split()]
        assert len(words) == len(set(words))
        assert group.name == group.name[:1].upper() + group.name[1:]
        assert " / ".join(group.top_terms[:3]).lower() == group.name.lower()


def test_definition_quotes_the_note_closest_to_the_centroid() -> None:
    pairs, _ = themed_notes()
    text_of = dict(pairs)
    result = cluster_notes(pairs, ClusterParams(distance_threshold=0.85))
    for group in result.groups:
        assert group.representative_id in group.note_ids
        assert f"“{text_of[group.representative_id]}”" in group.definition
        assert group.definition.startswith("Notes mentioning ")


def test_same_seed_and_shuffled_input_give_identical_results() -> None:
    pairs, _ = themed_notes()
    shuffled = list(pairs)
    random.Random(3).shuffle(shuffled)
    first = cluster_notes(pairs, ClusterParams(seed=5))
    second = cluster_notes(shuffled, ClusterParams(seed=5))
    assert first == second


def test_target_number_of_groups_cuts_the_tree_into_that_many() -> None:
    pairs, theme_of = themed_notes()
    two = cluster_notes(pairs, ClusterParams(target_groups=2))
    assert len(two.groups) == 2
    three = cluster_notes(pairs, ClusterParams(target_groups=3))
    assert sorted(len(g.note_ids) for g in three.groups) == [3, 4, 5]
    for group in three.groups:
        assert len({theme_of[i] for i in group.note_ids}) == 1


def test_min_group_size_drops_smaller_groups() -> None:
    pairs, _ = themed_notes()
    result = cluster_notes(pairs, ClusterParams(distance_threshold=0.85, min_group_size=4))
    assert [len(g.note_ids) for g in result.groups] == [5, 4]
    assert result.ungrouped_count == 3


def test_no_notes_gives_no_groups_and_says_why() -> None:
    result = cluster_notes([])
    assert result.groups == ()
    assert result.notices == ("0 notes to cluster: a group needs at least 2.",)


def test_one_note_gives_no_groups() -> None:
    result = cluster_notes([(7, "Wrong date")])
    assert result.groups == ()
    assert result.ungrouped_count == 1
    assert "1 note to cluster" in result.notices[0]


def test_identical_notes_form_one_group() -> None:
    result = cluster_notes([(i, "Invents a statistic") for i in range(1, 21)])
    assert len(result.groups) == 1
    assert result.groups[0].note_ids == tuple(range(1, 21))
    assert result.groups[0].representative_id == 1  # ties go to the lowest id


def test_empty_and_whitespace_notes_are_left_out_with_a_notice() -> None:
    result = cluster_notes([(1, ""), (2, "   \n\t"), (3, "wrong date"), (4, "wrong date!")])
    assert [g.note_ids for g in result.groups] == [(3, 4)]
    assert result.skipped_empty == 2
    assert "2 empty notes left out." in result.notices


def test_symbol_only_notes_cluster_by_characters_and_are_named_by_a_note() -> None:
    result = cluster_notes([(1, "??"), (2, "??"), (3, "!!")], ClusterParams(distance_threshold=0.5))
    assert [g.note_ids for g in result.groups] == [(1, 2)]
    assert result.groups[0].top_terms == ()
    assert result.groups[0].name == "??"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (
            ["Die Antwort erfindet eine Statistik", "erfindet Statistik über Schuhe", "erfindet eine Statistik"],
            ["Falsches Datum für die Fusion", "Das Datum ist falsch", "falsches Datum genannt"],
        ),
        (
            ["La réponse invente une statistique", "invente une statistique sur les ventes", "statistique inventée"],
            ["Mauvaise date pour la fusion", "la date est mauvaise", "date mauvaise encore"],
        ),
        (
            ["回答编造了统计数据", "编造统计数据", "又编造了统计数据"],
            ["日期错误", "给出的日期错误", "合并的日期错误"],
        ),
    ],
    ids=["german", "french", "chinese"],
)
def test_notes_in_other_languages_cluster_by_theme(first: list[str], second: list[str]) -> None:
    pairs = list(enumerate(first + second, start=1))
    result = cluster_notes(pairs, ClusterParams(target_groups=2))
    assert sorted(as_sets(result), key=min) == [{1, 2, 3}, {4, 5, 6}]


def test_above_the_cap_a_seeded_sample_builds_the_tree_and_the_rest_join_nearest_groups() -> None:
    pairs, theme_of = themed_notes()
    many = [(i * 100 + k, text) for k in range(10) for i, (_, text) in enumerate(pairs, start=1)]
    theme_by_text = {text: theme_of[note_id] for note_id, text in pairs}
    text_of = dict(many)
    params = ClusterParams(distance_threshold=0.85, max_clustered_notes=30, seed=2)
    result = cluster_notes(many, params)
    assert result.notices == (
        "Clustered a sample of 30 of 120 notes (seed 2); the other notes joined the nearest group when they were "
        "as close to it as its own members.",
    )
    assert sum(len(g.note_ids) for g in result.groups) == 120
    for group in result.groups:
        assert len({theme_by_text[text_of[i]] for i in group.note_ids}) == 1
    assert cluster_notes(many, params) == result


def test_progress_is_reported_in_stages_up_to_100() -> None:
    pairs, _ = themed_notes()
    seen: list[tuple[str, int]] = []
    cluster_notes(pairs, progress=lambda stage, percent: seen.append((stage, percent)))
    stages = [stage for stage, _ in seen]
    assert stages[0] == "vectorizing" and stages[-1] == "done"
    assert {"distances", "linking", "cutting", "naming"} <= set(stages)
    percents = [percent for _, percent in seen]
    assert percents == sorted(percents) and percents[-1] == 100


def test_at_most_the_largest_groups_are_kept() -> None:
    # Pairs of notes that share nothing with other pairs: one group each.
    words = [f"{chr(97 + i // 26)}{chr(97 + i % 26)}qz" for i in range(MAX_GROUPS + 5)]
    pairs = [(2 * i + k, f"{w} {w}{w}") for i, w in enumerate(words) for k in (0, 1)]
    result = cluster_notes(pairs, ClusterParams(distance_threshold=0.5))
    assert len(result.groups) == MAX_GROUPS
    assert f"Kept the {MAX_GROUPS} largest of {MAX_GROUPS + 5} groups." in result.notices


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (ClusterParams(seed=-1), "seed must be a whole number ≥ 0, got -1"),
        (ClusterParams(distance_threshold=0), "distance threshold must be in (0, 1], got 0"),
        (ClusterParams(distance_threshold=1.5), "distance threshold must be in (0, 1], got 1.5"),
        (ClusterParams(target_groups=0), f"number of groups must be between 1 and {MAX_GROUPS}, got 0"),
        (ClusterParams(target_groups=3, distance_threshold=0.5), "either a distance threshold or a number of groups"),
        (ClusterParams(min_group_size=1), "minimum group size must be at least 2, got 1"),
        (ClusterParams(max_clustered_notes=10**6), "notes clustered at once must be between 2 and 8,000"),
    ],
)
def test_bad_parameters_are_refused_with_the_parameter_named(params: ClusterParams, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cluster_notes([(1, "a note"), (2, "another")], params)
