"""The in-process vector index behind the semantic cache: exact answers against brute force, TTL,
bounded size."""

from __future__ import annotations

import numpy as np

from sluice.gateway.semantic_index import EXACT_UP_TO, SemanticIndex


def unit(rng, n, dim=384):
    m = rng.standard_normal((n, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def near(rng, v, noise):
    q = v + noise * rng.standard_normal(v.shape).astype(np.float32)
    return q / np.linalg.norm(q)


def test_prefiltered_search_agrees_with_brute_force():
    rng = np.random.default_rng(3)
    n = EXACT_UP_TO * 3  # past the exact-only size: the SimHash prefilter is used
    data = unit(rng, n)
    idx = SemanticIndex(max_entries=n)
    for i, v in enumerate(data):
        idx.add("k", v, i, 60, now=0)
    for k in range(60):
        target = int(rng.integers(n))
        q = near(rng, data[target], 0.015 + 0.005 * (k % 4))  # similarity ~0.96 down to ~0.86
        brute = data @ q
        expected = int(np.argmax(brute))
        m = idx.search("k", q, 0.9, now=1)
        if brute[expected] >= 0.9:
            assert m is not None and m.value == expected and abs(m.similarity - float(brute[expected])) < 1e-5
        else:
            assert m is None
    # a query far from everything misses
    assert idx.search("k", unit(rng, 1)[0], 0.9, now=1) is None


def test_threshold_ttl_and_shelves():
    rng = np.random.default_rng(4)
    a, b = unit(rng, 2)
    idx = SemanticIndex(max_entries=10, max_shelves=2)
    idx.add("stable", a, "A", ttl_s=10, now=100)
    assert idx.search("stable", a, 0.99, now=105).value == "A"
    assert idx.search("stable", a, 0.99, now=111) is None  # expired
    assert idx.search("canary", a, 0.5, now=105) is None  # another key never answers
    q = near(rng, a, 0.05)
    sim = float(a @ q)
    assert idx.search("stable", q, sim - 1e-4, now=105).value == "A"
    assert idx.search("stable", q, sim + 1e-4, now=105) is None
    idx.add("x", b, "B", 10, now=100)
    idx.add("y", b, "B", 10, now=100)  # third key: the least recently used ("stable") goes
    assert idx.shelves == 2 and idx.search("stable", a, 0.99, now=105) is None


def test_a_full_key_overwrites_its_oldest_entry():
    rng = np.random.default_rng(5)
    data = unit(rng, 5)
    idx = SemanticIndex(max_entries=3)
    for i, v in enumerate(data):
        idx.add("k", v, i, 60, now=0)
    assert len(idx) == 3
    assert idx.search("k", data[0], 0.99, now=1) is None and idx.search("k", data[1], 0.99, now=1) is None
    assert [idx.search("k", data[i], 0.99, now=1).value for i in (2, 3, 4)] == [2, 3, 4]
