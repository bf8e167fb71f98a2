"""Train / dev / test splits of a criterion's labelled traces, by a stable hash. Django-free.

Each labelled trace falls in one split per criterion and stays there however many labels are added later, so
few-shot examples and classifier training (train only) never touch the traces a judge is measured on (dev, test).
"""

from __future__ import annotations

import hashlib

SPLITS = ("train", "dev", "test")
DEFAULT_SHARES = (0.2, 0.4, 0.4)


def split_of(key: str, external_id: str, shares: tuple[float, float, float] = DEFAULT_SHARES) -> str:
    """The split of one trace for the criterion identified by `key` (stable within an installation)."""
    if len(shares) != 3 or any(share < 0 for share in shares) or abs(sum(shares) - 1) > 1e-9:
        raise ValueError(f"split shares must be three non-negative fractions summing to 1, got {shares!r}")
    digest = hashlib.blake2b(f"{key}:{external_id}".encode(), digest_size=8).digest()
    position = int.from_bytes(digest, "big") / 2**64
    if position < shares[0]:
        return "train"
    if position < shares[0] + shares[1]:
        return "dev"
    return "test"
