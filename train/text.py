"""Text and id hashing, specified exactly so the C++ featuriser can reproduce it byte for byte.

- A token is a maximal run of ASCII letters and digits, lower-cased; everything else separates.
- A token's bucket is FNV-1a 32-bit over its bytes, modulo (buckets - 2), plus 2.
  Bucket 0 is padding and bucket 1 marks an empty text, so every text has at least one token.
- Ids (product ids, brands) hash the same way over their raw UTF-8 bytes, without tokenising.
"""

from __future__ import annotations

import re

PAD = 0
EMPTY = 1
_TOKEN = re.compile(r"[a-z0-9]+")
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def fnv1a32(data: bytes) -> int:
    value = _FNV_OFFSET
    for byte in data:
        value ^= byte
        value = (value * _FNV_PRIME) & 0xFFFFFFFF
    return value


def tokens(text: str) -> list[str]:
    # Lower-casing only ASCII keeps C++ parity simple: other bytes are separators anyway.
    lowered = "".join(ch.lower() if "A" <= ch <= "Z" else ch for ch in text)
    return _TOKEN.findall(lowered)


def bucket(data: str, buckets: int) -> int:
    return fnv1a32(data.encode("utf-8")) % (buckets - 2) + 2


def token_buckets(text: str, buckets: int, max_tokens: int) -> list[int]:
    """Bucket ids of the first max_tokens tokens, padded with PAD to max_tokens."""
    ids = [bucket(token, buckets) for token in tokens(text)[:max_tokens]] or [EMPTY]
    return ids + [PAD] * (max_tokens - len(ids))
