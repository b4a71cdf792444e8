"""The hashed values the reference scripts fill random weights and inputs with, as the C tests
recompute them (tests/harness.h test_fnv1a64 / test_hashed_unit): a golden file then needs no stored
weights. FNV-1a 64 of a tensor's name is its seed; element i is one splitmix64 step of
seed + (i + 1) * 0x9E3779B97F4A7C15, its top 24 bits as a fraction in [0, 1)."""
import numpy as np

MASK = (1 << 64) - 1


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for ch in s.encode():
        h = ((h ^ ch) * 0x100000001B3) & MASK
    return h


def hashed_uniform(name, n):
    """n values in [0, 1), element i from splitmix64(fnv1a64(name) + (i + 1) * 0x9E37...)."""
    with np.errstate(over="ignore"):
        i = np.arange(1, n + 1, dtype=np.uint64)
        z = np.uint64(fnv1a64(name)) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float64) / float(1 << 24)
