"""Evaluation on the test days against labels and against the true probabilities (the ceiling)."""

from __future__ import annotations

import numpy as np
import torch

from . import calibration
from .dlrm import DLRM
from .features import Featurizer
from .fit import embed, predict
from .metrics import binary_report, ece, reliability
from .model import AdModel
from .slate import slate_quality
from .world import sigmoid, true_ctr_logit


def evaluate(model: AdModel | DLRM, featurizer: Featurizer, test_rows: np.ndarray, calibrators: dict, ad_embeddings: np.ndarray,
             recall_requests: int, seed: int) -> dict:
    report = ranking_report(model, featurizer, test_rows, calibrators)
    report["retrieval"] = retrieval_recall(model, featurizer, test_rows, ad_embeddings, recall_requests, seed)
    preset = featurizer.preset
    requests = np.random.default_rng(seed + 2).choice(test_rows, size=min(preset.slate_requests, len(test_rows)), replace=False)
    report["slate"] = slate_quality(model, featurizer, requests, calibrators, ad_embeddings, exhaustive_requests=preset.slate_exhaustive_requests)
    return report


def ranking_report(model: AdModel | DLRM, featurizer: Featurizer, test_rows: np.ndarray, calibrators: dict) -> dict:
    """The scorer's CTR, CVR and CTCVR against the labels, beside the true probabilities' (the ceiling)."""
    log = featurizer.world.impressions
    click, conversion = log.click[test_rows], log.conversion[test_rows]
    ctr_logit, cvr_logit = predict(model, featurizer, test_rows)
    raw_ctr, raw_cvr = calibration.sigmoid(ctr_logit), calibration.sigmoid(cvr_logit)
    ctr = calibration.apply(calibrators["ctr"], ctr_logit)
    cvr = calibration.apply(calibrators["cvr"], cvr_logit)
    clicked = click.astype(bool)
    truth_ctr, truth_cvr = log.p_click[test_rows], log.p_conversion[test_rows]
    report = {
        "ctr": {"model_raw": binary_report(click, raw_ctr), "model_calibrated": binary_report(click, ctr),
                "ground_truth": binary_report(click, truth_ctr)},
        "cvr_on_clicks": {"model_raw": binary_report(conversion[clicked], raw_cvr[clicked]),
                          "model_calibrated": binary_report(conversion[clicked], cvr[clicked]),
                          "ground_truth": binary_report(conversion[clicked], truth_cvr[clicked])},
        "ctcvr": {"model_calibrated": binary_report(conversion, ctr * cvr), "ground_truth": binary_report(conversion, truth_ctr * truth_cvr)},
        "ctr_reliability": {"before": reliability(click, raw_ctr), "after": reliability(click, ctr)},
        "ctr_ece": {"before": ece(click, raw_ctr), "after": ece(click, ctr)},
        "cvr_ece": {"before": ece(conversion[clicked], raw_cvr[clicked]), "after": ece(conversion[clicked], cvr[clicked])},
    }
    return report


def retrieval_recall(model: AdModel, featurizer: Featurizer, test_rows: np.ndarray, ad_embeddings: np.ndarray,
                     requests: int, seed: int, ks: tuple[int, ...] = (10, 100, 500)) -> dict:
    """recall@K of exact top-K by (E_user + E_ctx) . E_ad against the K ads with the highest true
    click probability for that request in the top slot; random retrieval would score K / ads."""
    world = featurizer.world
    log = world.impressions
    rng = np.random.default_rng(seed)
    rows = rng.choice(test_rows, size=min(requests, len(test_rows)), replace=False)
    with torch.no_grad():
        embedded = embed(model, featurizer.rows(rows))
        query = (embedded.user + embedded.context).numpy()
    model_scores = query @ ad_embeddings.T
    column = lambda values: values[rows][:, None]  # noqa: E731
    all_ads = np.arange(len(world.ads))[None, :]
    truth = true_ctr_logit(world, column(log.user), all_ads, column(log.placement), column(log.intent), column(log.query),
                           column(log.device), column(log.hour), np.zeros((1, 1), dtype=np.int64))
    result = {}
    for k in ks:
        if k > len(world.ads):
            continue
        retrieved = np.argpartition(-model_scores, k - 1, axis=1)[:, :k]
        best = np.argpartition(-truth, k - 1, axis=1)[:, :k]
        overlap = [len(np.intersect1d(r, b, assume_unique=True)) for r, b in zip(retrieved, best)]
        result[f"recall@{k}"] = float(np.mean(overlap) / k)
        result[f"random@{k}"] = k / len(world.ads)
    result["requests"] = int(len(rows))
    result["true_ctr_of_top_10"] = {
        "retrieved": float(sigmoid(np.take_along_axis(truth, np.argsort(-model_scores, axis=1)[:, :10], axis=1)).mean()),
        "best": float(sigmoid(np.sort(truth, axis=1)[:, -10:]).mean()),
    }
    return result
