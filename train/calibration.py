"""Calibration maps from raw logits to probabilities, stored as plain numbers that TypeScript applies
exactly (src/calibration/ mirrors apply()):

- isotonic: {"kind": "isotonic", "x": [...], "y": [...]}: x ascending raw logits, y non-decreasing
  probabilities; the value is linear interpolation between knots, clamped to y[0] / y[-1] outside.
- temperature: {"kind": "temperature", "t": T}: sigmoid(logit / T).
- platt: {"kind": "platt", "a": a, "b": b}: sigmoid(a * logit + b).
"""

from __future__ import annotations

import numpy as np
import torch

MAX_KNOTS = 256


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def apply(params: dict, logits: np.ndarray) -> np.ndarray:
    kind = params["kind"]
    if kind == "isotonic":
        return np.interp(logits, np.asarray(params["x"]), np.asarray(params["y"]))
    if kind == "temperature":
        return sigmoid(logits / params["t"])
    if kind == "platt":
        return sigmoid(params["a"] * logits + params["b"])
    raise ValueError(f"unknown calibration kind {kind!r}")


def fit_isotonic(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Pool-adjacent-violators on logits sorted ascending; each block becomes a knot at its mean
    logit and mean label. Blocks are then merged pairwise (size-weighted) down to MAX_KNOTS."""
    order = np.argsort(logits, kind="stable")
    x, y = logits[order].astype(np.float64), labels[order].astype(np.float64)
    sums_x, sums_y, counts = [], [], []
    for xi, yi in zip(x, y):
        sums_x.append(xi)
        sums_y.append(yi)
        counts.append(1.0)
        while len(counts) > 1 and sums_y[-2] / counts[-2] >= sums_y[-1] / counts[-1]:
            sx, sy, c = sums_x.pop(), sums_y.pop(), counts.pop()
            sums_x[-1] += sx
            sums_y[-1] += sy
            counts[-1] += c
    knots_x = np.array(sums_x) / np.array(counts)
    knots_y = np.array(sums_y) / np.array(counts)
    weights = np.array(counts)
    while len(knots_x) > MAX_KNOTS:
        # Merging neighbours keeps y non-decreasing because merged values are weighted means.
        pairs = len(knots_x) // 2
        w = weights[: 2 * pairs].reshape(pairs, 2)
        mx = (knots_x[: 2 * pairs].reshape(pairs, 2) * w).sum(1) / w.sum(1)
        my = (knots_y[: 2 * pairs].reshape(pairs, 2) * w).sum(1) / w.sum(1)
        tail = slice(2 * pairs, len(knots_x))
        knots_x = np.concatenate([mx, knots_x[tail]])
        knots_y = np.concatenate([my, knots_y[tail]])
        weights = np.concatenate([w.sum(1), weights[tail]])
    return {"kind": "isotonic", "x": [float(v) for v in knots_x], "y": [float(v) for v in knots_y]}


def _fit_logistic(logits: np.ndarray, labels: np.ndarray, fit_bias: bool) -> tuple[float, float]:
    x = torch.tensor(logits, dtype=torch.float64)
    y = torch.tensor(labels, dtype=torch.float64)
    scale = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(0.0, dtype=torch.float64, requires_grad=fit_bias)
    optimizer = torch.optim.LBFGS([scale, bias] if fit_bias else [scale], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(scale * x + bias, y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(scale), float(bias)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> dict:
    scale, _ = _fit_logistic(logits, labels, fit_bias=False)
    return {"kind": "temperature", "t": 1.0 / scale}


def fit_platt(logits: np.ndarray, labels: np.ndarray) -> dict:
    a, b = _fit_logistic(logits, labels, fit_bias=True)
    return {"kind": "platt", "a": a, "b": b}


FITTERS = {"isotonic": fit_isotonic, "temperature": fit_temperature, "platt": fit_platt}
