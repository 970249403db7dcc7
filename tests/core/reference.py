"""Slow, obvious NumPy references for the selectivity math (loops on purpose)."""

import numpy as np


def class_means_loop(acts: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    means = np.full((num_classes, acts.shape[1]), np.nan)
    for c in range(num_classes):
        rows = acts[labels == c]
        if len(rows):
            means[c] = rows.astype(np.float64).mean(axis=0)
    return means


def selectivity_loop(means: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    si = np.zeros(means.shape[1])
    for u in range(means.shape[1]):
        col = [m for m in means[:, u] if not np.isnan(m)]
        if len(col) < 2:
            continue
        top = max(col)
        rest = list(col)
        rest.remove(top)
        mu_rest = sum(rest) / len(rest)
        si[u] = (top - mu_rest) / (top + mu_rest + eps)
    return si
