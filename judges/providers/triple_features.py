"""Numeric features of an (input, context, output) triple: how much of the output its source supports. Django-free.

Bag-of-words over the output cannot see whether an answer is grounded; these features compare the output with its
source (the input and the context together). Every step is a C-level string method or set operation — no regex
alternations, no Python loop over a text's words — so a trace costs tens of microseconds and the triple classifier
scores about as fast as the TF-IDF of the output alone (bench/RESULTS.md). `triple_features` turns a batch into one
float matrix whose columns are `FEATURE_NAMES`; `words` is the tokeniser, shared with the classifier's TF-IDF so
each text is split once.

Counts are of distinct words ("Paris" twice is one unsupported entity), and a word is supported when the source
has it anywhere, case-insensitively: cheap, and blind to paraphrase — a supported output can still be wrong, but
an output full of words and numbers its source never uses is the typical extrinsic hallucination.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Words are split on bytes: `bytes.translate` with a 256-entry table runs at a few nanoseconds a character where
# `str.translate` and `re.findall` take 50-70 here. Punctuation becomes a space and apostrophes are dropped ("don't"
# → "dont"), so "181,674,817" splits into "181", "674", "817" on both sides and still matches; non-ASCII letters
# stay inside their word as UTF-8 bytes, and common non-ASCII punctuation is mapped to ASCII first.
_APOSTROPHES = b"'`"
_PUNCTUATION = bytes(c for c in string.punctuation.encode() if c not in _APOSTROPHES)
_SEPARATORS = bytes.maketrans(_PUNCTUATION, b" " * len(_PUNCTUATION))
# str.translate with a dict costs ~100 µs on a long passage; a handful of str.replace calls cost a few.
_UNICODE_MARKS = (("\u2019", "'"), ("\u2018", "'"), ("\u201c", " "), ("\u201d", " "), ("\u2013", " "), ("\u2014", " "))
_DIGIT_RUN = re.compile(rb"\d+")
NEGATIONS = frozenset(
    b"not no never none nobody nothing neither nor cannot cant dont doesnt didnt isnt arent wasnt werent wont "
    b"wouldnt shouldnt couldnt hasnt havent hadnt without".split()
)
# Words too common to say anything about support: left out of the word shares, so that "the" and "of" in an
# output do not make it look supported, and never counted as entities when capitalised at a sentence's start.
STOPWORDS = frozenset(
    b"a an the and or but of to in on at by for with from as is are was were be been being it its this that these "
    b"those he she they we you i his her their our your my me him them us which who whom what when where why how "
    b"there here has have had do does did will would can could should may might must also than then so such into "
    b"about over after before more most other some any each all both only very just if however while".split()
)
FEATURE_NAMES = (
    "log_output_words",
    "log_source_words",
    "log_ratio_output_input",
    "log_ratio_output_context",
    "unsupported_word_share",
    "log_unsupported_words",
    "unsupported_bigram_share",
    "log_output_numbers",
    "log_unsupported_numbers",
    "unsupported_number_share",
    "log_output_entities",
    "log_unsupported_entities",
    "unsupported_entity_share",
    "negation_asymmetry",
    "negation_without_source_negation",
    "log_output_sentences",
)


def _bytes(text: str) -> bytes:
    if not text.isascii():
        for mark, replacement in _UNICODE_MARKS:
            text = text.replace(mark, replacement)
    return text.encode("utf-8", "replace").translate(_SEPARATORS, _APOSTROPHES)


def _lower(text: bytes) -> bytes:
    # bytes.lower() lowercases ASCII only; other capitals ("Ü") are lowered as text, as `words` lowers the source.
    return text.lower() if text.isascii() else text.decode("utf-8", "replace").lower().encode("utf-8", "replace")


def words(text: str) -> list[bytes]:
    """The lowercased words and digit runs of a text (as UTF-8 bytes)."""
    return _bytes(text.lower()).split()


@dataclass(frozen=True, slots=True)
class Source:
    """What the features need of one source text (an input or a context), computed once per distinct text."""

    words: frozenset[bytes]
    bigrams: frozenset[tuple[bytes, bytes]]
    negations: frozenset[bytes]
    length: int


def source_of(text_words: list[bytes]) -> Source:
    distinct = frozenset(text_words)
    return Source(
        words=distinct,
        bigrams=frozenset(zip(text_words, text_words[1:], strict=False)),
        negations=NEGATIONS.intersection(distinct),
        length=len(text_words),
    )


def output_words(output: str) -> tuple[list[bytes], set[bytes]]:
    """An output's lowercased words in order, and its distinct words as written (for capitalised names)."""
    text = _bytes(output)
    return _lower(text).split(), set(text.split())


COUNT_NAMES = (
    "output_words",
    "input_words",
    "context_words",
    "content_words",
    "unsupported_words",
    "bigrams",
    "unsupported_bigrams",
    "numbers",
    "unsupported_numbers",
    "entities",
    "unsupported_entities",
    "output_negations",
    "source_negations",
    "sentences",
)


def counts_from_words(
    input_source: Source, context: Source, output_words: list[bytes], output_cased: set[bytes], output: str
) -> tuple[int, ...]:
    """The COUNT_NAMES of one triple from its tokenised texts (`output_words` gives the output's two); the
    arithmetic that turns them into features is done for a whole batch at once by `features_from_counts`.

    Differences are chained one set at a time: `a.difference(b)` walks the small output set and looks each word up
    in b, where `a.difference(b, c)` walks all of b and c — the whole source, for every trace."""
    distinct = set(output_words)
    content = distinct.difference(STOPWORDS)
    bigrams = set(zip(output_words, output_words[1:], strict=False))
    numbers = set(_DIGIT_RUN.findall(b" ".join(distinct)))
    # Entities: words written with a capital in the output (not a stopword such as a sentence's opening "The").
    entities = set(_lower(b" ".join(output_cased.difference(distinct))).split()).difference(STOPWORDS)
    return (
        len(output_words),
        input_source.length,
        context.length,
        len(content),
        len(content.difference(context.words).difference(input_source.words)),
        len(bigrams),
        len(bigrams.difference(context.bigrams).difference(input_source.bigrams)),
        len(numbers),
        len(numbers.difference(context.words).difference(input_source.words)),
        len(entities),
        len(entities.difference(context.words).difference(input_source.words)),
        len(NEGATIONS.intersection(distinct)),
        len(input_source.negations | context.negations),
        1 + output.count(". ") + output.count("? ") + output.count("! ") + output.count("\n") if output_words else 0,
    )


def _share(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    return np.divide(part, whole, out=np.zeros_like(part), where=whole > 0)


def features_from_counts(counts: Sequence[Sequence[int]]) -> np.ndarray:
    """FEATURE_NAMES columns from COUNT_NAMES rows, for a whole batch in a few array operations."""
    c = np.asarray(counts, dtype=np.float64).reshape(len(counts), len(COUNT_NAMES))
    (n_out, n_in, n_ctx, content, unsupported, bigrams, unsupported_bigrams, numbers, unsupported_numbers, entities,
     unsupported_entities, output_negations, source_negations, sentences) = c.T  # fmt: skip
    return np.column_stack(
        [
            np.log1p(n_out),
            np.log1p(n_in + n_ctx),
            np.log((n_out + 1) / (n_in + 1)),
            np.log((n_out + 1) / (n_ctx + 1)),
            _share(unsupported, content),
            np.log1p(unsupported),
            _share(unsupported_bigrams, bigrams),
            np.log1p(numbers),
            np.log1p(unsupported_numbers),
            _share(unsupported_numbers, numbers),
            np.log1p(entities),
            np.log1p(unsupported_entities),
            _share(unsupported_entities, entities),
            # Negation words the output uses against those its source uses: an output that says "not" where the
            # source never does, or drops the source's "never", flips a claim while keeping its words.
            output_negations - source_negations,
            (output_negations > 0) & (source_negations == 0),
            np.log1p(sentences),
        ]
    ).astype(np.float64)


def features_of(input_text: str, context_text: str, output: str) -> list[float]:
    """The FEATURE_NAMES values of one triple; the source is the input and the context together."""
    counts = counts_from_words(
        source_of(words(input_text)), source_of(words(context_text)), *output_words(output), output
    )
    return features_from_counts([counts])[0].tolist()


class ContextCache(dict):
    """Sources of the contexts seen in one batch: traces that share retrieved passages (every summary of one
    article, every answer from one document) tokenise them once. Lives for one batch, so it never grows."""

    def __missing__(self, text: str) -> Source:
        source = self[text] = source_of(words(text))
        return source


def triple_features(triples: Sequence[Sequence[Any]] | np.ndarray) -> np.ndarray:
    """A float matrix, one row per (input, context, output) triple, columns FEATURE_NAMES. Missing texts are ""."""
    contexts = ContextCache()
    counts = [
        counts_from_words(source_of(words(i or "")), contexts[c or ""], *output_words(o or ""), o or "")
        for i, c, o in triples
    ]
    return features_from_counts(counts)
