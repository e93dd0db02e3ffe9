"""Named random streams spawned from one SeedSequence per run.

docs/design.rst: "Randomness is an argument: one numpy.random.SeedSequence per run, spawned into
named streams. No global RNG anywhere." Streams are derived by hashing their name into the
spawn key, so adding a stream never changes the numbers another stream produces.
"""

from __future__ import annotations

import hashlib

import numpy as np

SeedLike = int | np.random.SeedSequence


def seed_sequence(seed: SeedLike) -> np.random.SeedSequence:
    """Accept an int or a SeedSequence; reject anything else (global state, None)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return np.random.SeedSequence(int(seed))
    raise ValueError(
        f"seed must be a non-negative int or a numpy.random.SeedSequence, got {seed!r}"
    )


def _name_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def named_stream(seed: SeedLike, name: str) -> np.random.Generator:
    """A Generator for the stream ``name`` of the run seeded by ``seed``.

    The child's spawn key is the parent's key extended by a hash of ``name`` (the scheme
    benchopt uses for run coordinates), so streams are independent and stable.
    """
    ss = seed_sequence(seed)
    child = np.random.SeedSequence(
        entropy=ss.entropy, spawn_key=(*ss.spawn_key, _name_key(name)), pool_size=ss.pool_size
    )
    return np.random.default_rng(child)


def as_generator(rng: np.random.Generator | SeedLike) -> np.random.Generator:
    """A Generator passed in is used as is (its state advances); a seed builds a new one."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(seed_sequence(rng))
