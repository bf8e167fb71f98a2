"""Suggested groupings: cluster free-text notes into candidate failure modes. No Django import.

Notes are short, often terse ("cites wrong year"), sometimes in several languages, so each is represented by TF-IDF
over word unigrams+bigrams (what naming reads) concatenated with character n-grams inside word boundaries (which
match "refund"/"refunds", typos and languages without spaces). Both use sublinear tf, so a repeated word does not
dominate a note.

Grouping is agglomerative clustering with cosine distance and average linkage. scikit-learn's
AgglomerativeClustering delegates exactly this case to SciPy's `linkage`; calling SciPy directly lets us feed it a
condensed distance vector built block by block from the sparse vectors (half the memory of sklearn's dense matrix
plus its index arrays) and cut one tree either at a distance or at a number of groups. The tree needs every pairwise
distance: n·(n−1)/2 float64s, and SciPy copies them once, so 5,000 notes take 200 MB and 10,000 would take 800 MB.
Above `max_clustered_notes` a seeded sample builds the tree and every other note joins the group whose centroid is
closest, when it is as close as the groups' own cut; the result says so in its notices.

Determinism: the input is sorted by note id, the tree is deterministic, and the seed only picks the sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

# SciPy and scikit-learn are imported where they are used: this module is reachable from every web process (its
# constants and dataclasses are), and those two libraries would add ~100 MB and seconds to each start.
if TYPE_CHECKING:
    import scipy.sparse as sp

ProgressCallback = Callable[[str, int], None]

DEFAULT_DISTANCE_THRESHOLD = 0.85
# Groups joined above this average distance share almost nothing; a target number of groups never forces them.
MAX_MERGE_DISTANCE = 0.95
DEFAULT_MAX_CLUSTERED_NOTES = 5_000
MAX_CLUSTERED_NOTES_LIMIT = 8_000  # 8,000 notes: 256 MB of distances, twice over during linkage
MAX_GROUPS = 100
TERMS_PER_GROUP = 6
TERMS_IN_NAME = 3
NAME_MAX_CHARS = 200
# Share of the similarity that comes from words (the rest from character n-grams).
WORD_WEIGHT = 0.5
# Rows of the similarity matrix computed at once: bounds the dense temporary to BLOCK × n float64s.
BLOCK_ROWS = 512


# Negations carry the meaning of failure notes ("does not cite"), so they are kept when naming.
@cache
def _naming_stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) - {"not", "no", "never", "nor", "without", "cannot", "none"}


@dataclass(frozen=True)
class ClusterParams:
    """How to cut the tree: at `distance_threshold` (cosine distance, 0–1), or into about `target_groups` groups."""

    seed: int = 0
    distance_threshold: float | None = None
    target_groups: int | None = None
    min_group_size: int = 2
    max_clustered_notes: int = DEFAULT_MAX_CLUSTERED_NOTES

    def validate(self) -> None:
        """Raise ValueError naming the bad parameter."""
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a whole number ≥ 0, got {self.seed!r}")
        if self.distance_threshold is not None and not (0 < self.distance_threshold <= 1):
            raise ValueError(f"distance threshold must be in (0, 1], got {self.distance_threshold}")
        if self.target_groups is not None and not (1 <= self.target_groups <= MAX_GROUPS):
            raise ValueError(f"number of groups must be between 1 and {MAX_GROUPS}, got {self.target_groups}")
        if self.distance_threshold is not None and self.target_groups is not None:
            raise ValueError("give either a distance threshold or a number of groups, not both")
        if self.min_group_size < 2:
            raise ValueError(f"minimum group size must be at least 2, got {self.min_group_size}")
        if not (2 <= self.max_clustered_notes <= MAX_CLUSTERED_NOTES_LIMIT):
            raise ValueError(
                f"notes clustered at once must be between 2 and {MAX_CLUSTERED_NOTES_LIMIT:,}, "
                f"got {self.max_clustered_notes}"
            )


@dataclass(frozen=True)
class Group:
    note_ids: tuple[int, ...]  # sorted by id
    name: str
    definition: str
    top_terms: tuple[str, ...]
    representative_id: int  # the member closest to the group's centroid


@dataclass(frozen=True)
class ClusteringResult:
    groups: tuple[Group, ...]  # largest first
    notices: tuple[str, ...]  # what the caller should tell the user (sampling, skipped notes, caps)
    input_count: int
    skipped_empty: int
    ungrouped_count: int


def _noop_progress(_stage: str, _percent: int) -> None:
    return None


def cluster_notes(
    notes: Iterable[tuple[int, str]], params: ClusterParams | None = None, progress: ProgressCallback | None = None
) -> ClusteringResult:
    """Group (note_id, text) pairs into named candidate failure modes, largest group first."""
    params = params or ClusterParams()
    params.validate()
    report = progress or _noop_progress
    ordered = sorted(notes, key=lambda pair: pair[0])
    ids = [note_id for note_id, text in ordered if text and text.strip()]
    texts = [" ".join(text.split()) for _, text in ordered if text and text.strip()]
    skipped = len(ordered) - len(ids)
    notices: list[str] = []
    if skipped:
        notices.append(f"{skipped} empty note{'s' if skipped != 1 else ''} left out.")
    if len(ids) < params.min_group_size:
        notices.append(
            f"{len(ids)} note{'s' if len(ids) != 1 else ''} to cluster: a group needs at least {params.min_group_size}."
        )
        report("done", 100)
        return ClusteringResult((), tuple(notices), len(ordered), skipped, len(ids))

    report("vectorizing", 5)
    combined, words, vocabulary = _vectorize(texts)

    tree_rows = np.arange(len(ids))
    if len(ids) > params.max_clustered_notes:
        rng = np.random.default_rng(params.seed)
        tree_rows = np.sort(rng.choice(len(ids), size=params.max_clustered_notes, replace=False))
        notices.append(
            f"Clustered a sample of {len(tree_rows):,} of {len(ids):,} notes (seed {params.seed}); the other notes "
            "joined the nearest group when they were as close to it as its own members."
        )

    report("distances", 10)
    condensed = _condensed_cosine_distances(combined[tree_rows], lambda share: report("distances", 10 + share * 50))
    report("linking", 65)
    from scipy.cluster.hierarchy import linkage

    tree = linkage(condensed, method="average")
    del condensed
    report("cutting", 80)
    labels, cut_height = _cut(tree, len(tree_rows), params)

    member_rows = _groups_from_labels(labels, tree_rows, params.min_group_size)
    if len(tree_rows) < len(ids) and member_rows:
        member_rows = _assign_rest(combined, member_rows, tree_rows, len(ids), cut_height)

    member_rows.sort(key=lambda rows: (-len(rows), rows[0]))
    if len(member_rows) > MAX_GROUPS:
        notices.append(f"Kept the {MAX_GROUPS} largest of {len(member_rows)} groups.")
        member_rows = member_rows[:MAX_GROUPS]

    report("naming", 90)
    corpus_mean = np.asarray(words.mean(axis=0)).ravel()
    # Notes using each term (a CSR row lists each of its terms once).
    doc_counts = np.bincount(words.indices, minlength=words.shape[1])
    groups = tuple(
        _describe(rows, ids, texts, combined, words, vocabulary, corpus_mean, doc_counts) for rows in member_rows
    )
    grouped = sum(len(g.note_ids) for g in groups)
    report("done", 100)
    return ClusteringResult(groups, tuple(notices), len(ordered), skipped, len(ids) - grouped)


def _vectorize(texts: Sequence[str]) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """Combined L2-normalised vectors for distances, the word part alone for naming, and the word vocabulary."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    word_vectorizer = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, dtype=np.float64)
    try:
        words = word_vectorizer.fit_transform(texts).tocsr()
        vocabulary = word_vectorizer.get_feature_names_out()
    except ValueError:  # no note has a word of two letters or more ("??", "!!"): characters alone must do
        words = sp.csr_matrix((len(texts), 0), dtype=np.float64)
        vocabulary = np.array([], dtype=object)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, dtype=np.float64)
    char_matrix = chars.fit_transform(texts).tocsr()
    # Each part is already unit length, so these weights make cosine = w·cos_words + (1−w)·cos_chars.
    combined = sp.hstack([words * math.sqrt(WORD_WEIGHT), char_matrix * math.sqrt(1 - WORD_WEIGHT)], format="csr")
    return normalize(combined), words, vocabulary


def _condensed_cosine_distances(vectors: sp.csr_matrix, progress: Callable[[float], None]) -> np.ndarray:
    """Pairwise cosine distances in SciPy's condensed order, computed a block of rows at a time."""
    n = vectors.shape[0]
    condensed = np.empty(n * (n - 1) // 2, dtype=np.float64)
    transposed = vectors.T.tocsc()
    for start in range(0, n, BLOCK_ROWS):
        stop = min(n, start + BLOCK_ROWS)
        similarities = (vectors[start:stop] @ transposed).toarray()
        for i in range(start, min(stop, n - 1)):
            offset = n * i - i * (i + 1) // 2  # condensed index of the pair (i, i + 1)
            np.subtract(1.0, similarities[i - start, i + 1 :], out=condensed[offset : offset + n - i - 1])
        progress(stop / n)
    # Rounding can put identical notes a hair below zero; linkage needs distances ≥ 0.
    np.clip(condensed, 0.0, 1.0, out=condensed)
    return condensed


def _cut(tree: np.ndarray, n: int, params: ClusterParams) -> tuple[np.ndarray, float]:
    """Flat labels after replaying the first k merges of the tree, and the height of that cut."""
    heights = tree[:, 2]
    if params.target_groups is None:
        threshold = params.distance_threshold or DEFAULT_DISTANCE_THRESHOLD
        steps = int(np.searchsorted(heights, threshold, side="right"))
        return _replay(tree, n, steps), threshold
    steps = _steps_for_target(tree, n, params.target_groups, params.min_group_size)
    height = float(heights[steps - 1]) if steps else 0.0
    return _replay(tree, n, steps), height


def _steps_for_target(tree: np.ndarray, n: int, target: int, min_size: int) -> int:
    """The most merged cut that still has `target` groups of at least `min_size`, or else the cut with the most.

    Small groups grow into qualifying ones and qualifying ones merge, so the count rises and then falls; one pass
    over the merges tracks it.
    """
    sizes = np.ones(2 * n - 1, dtype=np.int64)
    sizes[n:] = tree[:, 3].astype(np.int64)
    qualifying = 0
    best_steps, best_count, last_reaching = 0, 0, None
    for step, (a, b, height, _size) in enumerate(tree, start=1):
        if height > MAX_MERGE_DISTANCE:
            break
        new = sizes[n + step - 1]
        qualifying += int(new >= min_size) - int(sizes[int(a)] >= min_size) - int(sizes[int(b)] >= min_size)
        if qualifying >= best_count:
            best_steps, best_count = step, qualifying
        if qualifying >= target:
            last_reaching = step
    return last_reaching if last_reaching is not None else best_steps


def _replay(tree: np.ndarray, n: int, steps: int) -> np.ndarray:
    """Cluster label per leaf after the first `steps` merges (union-find over the linkage rows)."""
    parent = np.arange(2 * n - 1)
    for step in range(steps):
        a, b = int(tree[step, 0]), int(tree[step, 1])
        parent[a] = parent[b] = n + step
    labels = np.empty(n, dtype=np.int64)
    for leaf in range(n):
        root = leaf
        while parent[root] != root:
            root = parent[root]
        # Path compression keeps the whole pass near linear.
        node = leaf
        while parent[node] != root:
            parent[node], node = root, parent[node]
        labels[leaf] = root
    return labels


def _groups_from_labels(labels: np.ndarray, rows: np.ndarray, min_size: int) -> list[list[int]]:
    by_label: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        by_label.setdefault(int(label), []).append(int(rows[position]))
    return [members for members in by_label.values() if len(members) >= min_size]


def _centroids(vectors: sp.csr_matrix, member_rows: Sequence[Sequence[int]]) -> np.ndarray:
    from sklearn.preprocessing import normalize

    centroids = np.vstack([np.asarray(vectors[list(rows)].mean(axis=0)).ravel() for rows in member_rows])
    return normalize(centroids)


def _assign_rest(
    vectors: sp.csr_matrix, member_rows: list[list[int]], tree_rows: np.ndarray, total: int, cut_height: float
) -> list[list[int]]:
    """Notes left out of the sampled tree join the nearest group centroid when within the cut's distance."""
    centroids = _centroids(vectors, member_rows)
    in_tree = np.zeros(total, dtype=bool)
    in_tree[tree_rows] = True
    rest = np.flatnonzero(~in_tree)
    grown = [list(rows) for rows in member_rows]
    for start in range(0, len(rest), BLOCK_ROWS * 8):
        chunk = rest[start : start + BLOCK_ROWS * 8]
        similarities = np.asarray(vectors[chunk] @ centroids.T)
        nearest = similarities.argmax(axis=1)
        close = 1.0 - similarities[np.arange(len(chunk)), nearest] <= cut_height
        for row, group, ok in zip(chunk, nearest, close, strict=True):
            if ok:
                grown[int(group)].append(int(row))
    return [sorted(rows) for rows in grown]


def _describe(
    rows: Sequence[int],
    ids: Sequence[int],
    texts: Sequence[str],
    vectors: sp.csr_matrix,
    words: sp.csr_matrix,
    vocabulary: np.ndarray,
    corpus_mean: np.ndarray,
    doc_counts: np.ndarray,
) -> Group:
    rows = sorted(rows)
    centroid = _centroids(vectors, [rows])[0]
    closeness = np.asarray(vectors[rows] @ centroid).ravel()
    # argmax returns the first maximum, i.e. the lowest note id among equally typical notes.
    representative = rows[int(np.argmax(closeness))]
    terms = _top_terms(words, rows, vocabulary, corpus_mean, doc_counts)
    representative_text = texts[representative]
    name = _name_from(terms, representative_text)
    definition = _definition_from(terms, representative_text)
    return Group(
        note_ids=tuple(ids[row] for row in rows),
        name=name,
        definition=definition,
        top_terms=tuple(terms),
        representative_id=ids[representative],
    )


def _top_terms(
    words: sp.csr_matrix, rows: Sequence[int], vocabulary: np.ndarray, corpus_mean: np.ndarray, doc_counts: np.ndarray
) -> list[str]:
    """Terms that set the group apart: the share of its notes using a term minus the share of the other notes using
    it, ties broken by mean tf-idf in the group minus the mean over all notes. Coverage first, because a word in
    every note of the group names it better than a rarer word with a high weight in two of them."""
    if words.shape[1] == 0:
        return []
    group = words[list(rows)]
    inside = np.bincount(group.indices, minlength=words.shape[1])
    others = max(1, words.shape[0] - len(rows))
    coverage = inside / len(rows) - (doc_counts - inside) / others
    weight = np.asarray(group.mean(axis=0)).ravel() - corpus_mean
    scores = coverage + weight
    # A stable sort on (−score) keeps ties in vocabulary (alphabetical) order, so names are reproducible.
    order = np.argsort(-scores, kind="stable")
    chosen: list[str] = []
    for index in order:
        if scores[index] <= 0 or len(chosen) == TERMS_PER_GROUP:
            break
        term = str(vocabulary[index])
        term_words = set(term.split())
        # "the", "date for": a term with a function word in it names nothing.
        if term_words & _naming_stop_words():
            continue
        # "wrong date" and "date" say the same thing twice; keep whichever ranked first.
        if any(term_words & set(other.split()) for other in chosen):
            continue
        chosen.append(term)
    return chosen


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _name_from(terms: Sequence[str], representative_text: str) -> str:
    # Without usable words (e.g. only symbols) the typical note itself names the group.
    name = " / ".join(terms[:TERMS_IN_NAME]) if terms else " ".join(representative_text.split()[:8])
    name = name[:1].upper() + name[1:]
    return _shorten(name, NAME_MAX_CHARS)


def _definition_from(terms: Sequence[str], representative_text: str) -> str:
    example = _shorten(representative_text, 160)
    if not terms:
        return f"Notes like “{example}”."
    listed = terms[:TERMS_IN_NAME]
    joined = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]
    return f"Notes mentioning {joined}, e.g. “{example}”."
