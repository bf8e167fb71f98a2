"""Word diffs of a criterion's definition (pure)."""

from __future__ import annotations

from annotation.definition_diff import changed_words, word_diff


def test_an_unchanged_definition_is_one_same_segment():
    assert word_diff("Fail when it apologises.", "Fail when it apologises.") == [("same", "Fail when it apologises.")]


def test_a_changed_word_is_removed_then_added_in_place():
    segments = word_diff("Fail when the answer apologises.", "Fail when the answer apologises twice or more.")
    assert segments == [
        ("same", "Fail when the answer "),
        ("removed", "apologises."),
        ("added", "apologises twice or more."),
    ]


def test_the_new_text_is_the_same_and_added_segments_joined():
    old = "Pass when the refund policy is quoted.\nFail otherwise."
    new = "Pass when the refund policy (30 days) is quoted exactly.\nFail otherwise, and when dates are invented."
    segments = word_diff(old, new)
    assert "".join(text for op, text in segments if op != "removed") == new
    assert "".join(text for op, text in segments if op != "added") == old


def test_from_nothing_everything_is_added():
    assert word_diff("", "Fail on any invented date.") == [("added", "Fail on any invented date.")]


def test_changed_words_are_the_content_words_added_or_removed():
    assert changed_words("Fail when it apologises.", "Fail when it apologises or blames the user.") >= {
        "blames",
        "user",
    }
    assert "when" not in changed_words("Fail when it apologises.", "Fail when it apologises or blames the user.")
