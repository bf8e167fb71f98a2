"""What changed between two versions of a criterion's definition, word by word. Django-free.

The segments are plain text with an operation; the template escapes them and marks insertions and deletions, so a
definition's text never reaches the page as markup.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from typing import Literal

Op = Literal["same", "added", "removed"]
# Words with the whitespace after them: joining the tokens gives the text back exactly.
_TOKEN = re.compile(r"\S+\s*|\s+")


def word_diff(old: str, new: str) -> list[tuple[Op, str]]:
    """`new` against `old` as (operation, text) segments in reading order; neighbours of one operation are merged."""
    before, after = _TOKEN.findall(old), _TOKEN.findall(new)
    # Compared without trailing whitespace, so a word that only moved to the end of a line is not a change.
    matcher = SequenceMatcher(a=[t.rstrip() for t in before], b=[t.rstrip() for t in after], autojunk=False)
    segments: list[tuple[Op, str]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            _add(segments, "same", "".join(after[j1:j2]))
            continue
        if i2 > i1:
            _add(segments, "removed", "".join(before[i1:i2]))
        if j2 > j1:
            _add(segments, "added", "".join(after[j1:j2]))
    return segments


def _add(segments: list[tuple[Op, str]], op: Op, text: str) -> None:
    if segments and segments[-1][0] == op:
        segments[-1] = (op, segments[-1][1] + text)
    else:
        segments.append((op, text))


# Words too common to say what a change was about (English; a definition in another language keeps them all).
_FUNCTION_WORDS_TEXT = (
    "the and for are but not you all any can her was one our out has had him his how its may new now who"
    " did get let say she too use than that this with from they them then there these those when what"
    " which will would should could been have into only also more most some such very"
)
_FUNCTION_WORDS = frozenset(_FUNCTION_WORDS_TEXT.split())


def changed_words(old: str, new: str) -> set[str]:
    """The content words added or removed (lower-cased, three letters or more, function words left out): what a
    recalibration looks for in the critiques and notes of labels made under the old definition."""
    words: set[str] = set()
    for op, text in word_diff(old, new):
        if op != "same":
            words.update(word.lower() for word in re.findall(r"\w+", text) if len(word) > 2)
    return words - _FUNCTION_WORDS
