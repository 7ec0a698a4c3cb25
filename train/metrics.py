"""Offline metrics: AUC, log loss, expected calibration error and reliability tables."""

from __future__ import annotations

import numpy as np


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum formula, with tied scores sharing their mean rank."""
    labels = labels.astype(bool)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(scores)]])
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return float((ranks[labels].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def reliability(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> list[dict]:
    """Equal-mass bins (CTR mass sits near 0, where equal-width bins would put nearly every row in one)."""
    order = np.argsort(probabilities, kind="stable")
    table = []
    for chunk in np.array_split(order, bins):
        if len(chunk) == 0:
            continue
        table.append({"count": int(len(chunk)), "predicted": float(probabilities[chunk].mean()),
                      "observed": float(labels[chunk].mean())})
    return table


def ece(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over equal-mass bins: count-weighted |predicted - observed|."""
    table = reliability(labels, probabilities, bins)
    total = sum(row["count"] for row in table)
    return float(sum(row["count"] * abs(row["predicted"] - row["observed"]) for row in table) / total)


def binary_report(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    return {"auc": auc(labels, probabilities), "log_loss": log_loss(labels, probabilities), "ece": ece(labels, probabilities),
            "mean_predicted": float(probabilities.mean()), "observed_rate": float(labels.mean()), "rows": int(len(labels))}
