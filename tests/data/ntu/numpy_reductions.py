"""Writes numpy_reductions.txt: float32 reductions as numpy computes them, for the Rust tests.

Each line is `KIND RESULT VALUES...`, every number the hex bits of a float32:
- `sum`: `a.sum()` of a contiguous 1-D array (numpy sums it pairwise);
- `varsum`: `np.sum(np.var(a.reshape(-1, 3), axis=0))`, CTR-GCN's motion measure.
Run with numpy 1.x (the CTR-GCN era): `python numpy_reductions.py > numpy_reductions.txt`.
"""
import numpy as np

rng = np.random.default_rng(20240601)


def bits(x):
    return "%08x" % np.float32(x).view(np.uint32)


def values(n):
    scale = np.float32(10.0) ** rng.integers(-3, 4, n).astype(np.float32)
    return (rng.standard_normal(n).astype(np.float32) * scale).astype(np.float32)


for n in [1, 5, 8, 9, 25, 75, 127, 128, 129, 150, 300, 1000]:
    for _ in range(4):
        a = values(n)
        print("sum", bits(a.sum()), *map(bits, a))
for rows in [2, 12, 25, 68 * 25]:
    for _ in range(3):
        a = (values(rows * 3).reshape(-1, 3) * np.float32(0.01) + np.float32(2.0)).astype(np.float32)
        print("varsum", bits(np.sum(np.var(a, axis=0))), *map(bits, a.ravel()))
