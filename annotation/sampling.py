"""How many traces a review session takes from each stratum, and in what order it walks a circular key space.

Pure functions with no Django import: the session service (annotation/sessions.py) feeds them counts from SQL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

# shuffle_key is a non-negative signed bigint (Project.shuffle_key drops one bit), so positions live in [0, 2**63).
KEY_SPACE = 1 << 63


def seeded_start(*parts: str) -> int:
    """A start point in the shuffle-key space; the same parts always give the same point."""
    digest = hashlib.blake2b(":".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def circular_distance(key: int, start: int) -> int:
    """How far `key` lies after `start` when the key space wraps around (0 for the start itself)."""
    return (key - start) % KEY_SPACE


def allocate_equal(counts: Mapping[K, int], total: int, order: Sequence[K]) -> dict[K, int]:
    """Split `total` over the strata as evenly as their sizes allow (water-filling).

    Every stratum gets the same share; a stratum smaller than its share gives all it has and the rest is shared
    among the others. When the remainder cannot be split evenly, the first strata in `order` get one more each.
    The quotas sum to min(total, sum(counts)) and never exceed a stratum's count.
    """
    quota = dict.fromkeys(order, 0)
    remaining = min(total, sum(counts.get(key, 0) for key in order))
    active = [key for key in order if counts.get(key, 0) > 0]
    while remaining > 0 and active:
        share = remaining // len(active)
        if share == 0:
            for key in active[:remaining]:
                quota[key] += 1
            break
        still_open = []
        for key in active:
            given = min(share, counts[key] - quota[key])
            quota[key] += given
            remaining -= given
            if quota[key] < counts[key]:
                still_open.append(key)
        active = still_open
    return quota


def allocate_proportional(counts: Mapping[K, int], total: int, order: Sequence[K]) -> dict[K, int]:
    """Split `total` in proportion to the strata's sizes by largest remainder (Hamilton's method).

    Ties between equal remainders go to the stratum earlier in `order`. The quotas sum to min(total, sum(counts)).
    """
    population = sum(counts.get(key, 0) for key in order)
    wanted = min(total, population)
    if wanted == 0:
        return dict.fromkeys(order, 0)
    # Integer arithmetic: exact remainders, no float ties.
    quota = {key: counts.get(key, 0) * wanted // population for key in order}
    remainders = {key: counts.get(key, 0) * wanted % population for key in order}
    position = {key: index for index, key in enumerate(order)}
    leftover = wanted - sum(quota.values())
    for key in sorted(order, key=lambda k: (-remainders[k], position[k]))[:leftover]:
        quota[key] += 1
    return quota
