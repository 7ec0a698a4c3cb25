"""Slate quality: the true expected clicks and revenue of what the whole pipeline serves, against an
oracle that scores the whole catalog with the true probabilities.

Every pipeline below runs the same auction (mirroring src/auction with the daemon's defaults: the
lightweight score as relevance, the quality score, reserves, GSP with ε, no floor); only the
candidate set and the probabilities it ranks with differ:

  oracle              true pCTR / pCVR over the whole catalog
  truth on retrieved  true probabilities over the annCandidates ads exact retrieval returns
  truth on candidates true probabilities over the scoreCandidates the lightweight score keeps
  served              the model's calibrated pCTR / pCVR over those same candidates (what adserve serves)

so the loss oracle - served splits exactly into retrieval (oracle - truth on retrieved), the
lightweight cut (truth on retrieved - truth on candidates) and ranking (truth on candidates -
served). On a subset of the requests the model also scores the whole catalog ("exhaustive"): what
a perfect retrieval would buy under today's model.

Simplified against the daemon: retrieval is exact (flat), so ANN error is not in these numbers;
targeting, keyword candidates, budgets, pacing and frequency caps are left out (every ad is
eligible); the request has no floor; a winner in slot k is clicked with the world's position-k
probability. Under an auction neither share is bounded by 1 by construction (an overestimated
runner-up raises a GSP price), but the oracle is the best the catalog allows for the auction's own
ranking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import calibration
from .features import AD_NUMERIC, Featurizer, ad_ids
from .fit import embed, score
from .model import AdModel
from .world import BID_TYPES, POSITION_BIAS, sigmoid, true_ctr_logit, true_cvr_logit

CPC, CPM, CPA = (BID_TYPES.index(name) for name in ("CPC", "CPM", "CPA"))
PIPELINES = ["oracle", "truth_on_retrieved", "truth_on_candidates", "served"]


@dataclass(frozen=True)
class ServingSetup:
    """The daemon's defaults (src/config.ts, src/auction/quality.ts) that shape a slate."""

    ann_candidates: int = 1000
    score_candidates: int = 300
    light_similarity: float = 0.3
    light_value: float = 0.3
    light_ctr: float = 0.3
    light_quality: float = 0.1
    light_max_ecpm_micros: float = 50_000_000
    # Reserve per billable unit, indexed like BID_TYPES (CPC, CPM, CPA).
    reserve_micros: tuple[int, int, int] = (50_000, 500_000, 1_000_000)
    increment_micros: int = 10_000
    quality_alpha: float = 0.5
    quality_beta: float = 0.3
    quality_gamma: float = 0.2
    quality_delta: float = 0.4


@dataclass
class Catalog:
    """Per-ad columns the auction and the lightweight score read."""

    bid_type: np.ndarray        # [A] int
    bid_micros: np.ndarray      # [A] float64
    landing: np.ndarray         # [A] float64, as the exported catalog rounds it
    prior: np.ndarray           # [A] float64: the static part of the lightweight score


def catalog_columns(featurizer: Featurizer, setup: ServingSetup) -> Catalog:
    ads, store = featurizer.world.ads, featurizer.store
    bid_type = ads.bid_type
    bid = ads.campaign_bid_micros[ads.campaign].astype(np.float64)
    landing = np.round(ads.landing_quality, 4)
    ctr = sigmoid(store.ad_raw_numeric[:, AD_NUMERIC.index("ctr_logit")])
    cvr = sigmoid(store.ad_raw_numeric[:, AD_NUMERIC.index("cvr_logit")])
    # adPrior in src/engine/engine.ts: expected eCPM from the historical rates.
    ecpm = np.where(bid_type == CPM, bid, np.where(bid_type == CPC, bid * ctr * 1000, bid * ctr * cvr * 1000))
    prior = setup.light_value * np.minimum(ecpm / setup.light_max_ecpm_micros, 1) + setup.light_ctr * ctr + setup.light_quality * landing
    return Catalog(bid_type=bid_type, bid_micros=bid, landing=landing, prior=prior)


@np.errstate(divide="ignore")
def quality_scores(bid_type, p_ctr, p_cvr, relevance, landing, setup: ServingSetup) -> np.ndarray:
    """src/auction/quality.ts over [R, N] candidates: each component over its mean in the request, clamped to [0.5, 1.5]."""
    # A zero mean counts as 1, and a zero probability takes ln 0 = -inf to the lower clamp, as in the daemon.
    mean = lambda x: np.log(np.where(x.mean(axis=1, keepdims=True) > 0, x.mean(axis=1, keepdims=True), 1.0))  # noqa: E731
    shared = setup.quality_beta * (np.log(relevance) - mean(relevance)) + setup.quality_gamma * (np.log(landing) - mean(landing))
    log_qs = shared + np.where(bid_type == CPC, setup.quality_alpha * (np.log(p_cvr) - mean(p_cvr)),
                               np.where(bid_type == CPM, setup.quality_delta * (np.log(p_ctr) - mean(p_ctr)), 0.0))
    return np.clip(np.exp(log_qs), 0.5, 1.5)


def gsp(ad, bid_type, bid, p_ctr, p_cvr, quality, slots: int, setup: ServingSetup) -> tuple[np.ndarray, np.ndarray]:
    """src/auction/auction.ts (GSP, no floor) over [R, N] candidates -> (winning ads [R, slots], -1
    where unfilled; prices in micros per billable unit [R, slots])."""
    factor = np.where(bid_type == CPM, quality, np.where(bid_type == CPA, p_ctr * p_cvr * 1000 * quality, p_ctr * 1000 * quality))
    ecpm = bid * factor
    reserve = np.asarray(setup.reserve_micros, dtype=np.float64)[bid_type]
    rank = np.where((bid >= reserve) & (ecpm > 0), ecpm, -np.inf)
    keep = min(slots + 1, rank.shape[1])
    # Best first, ties to the lower ad index (the daemon's tiebreak; CPM ads of one campaign tie
    # exactly once their quality clamps): a stable sort over the columns in ad order.
    by_ad = np.argsort(ad, axis=1, kind="stable")
    top = np.take_along_axis(by_ad, np.argsort(-np.take_along_axis(rank, by_ad, 1), axis=1, kind="stable")[:, :keep], 1)
    ranked = np.take_along_axis(rank, top, 1)
    if keep < slots + 1:
        ranked = np.pad(ranked, ((0, 0), (0, slots + 1 - keep)), constant_values=-np.inf)
        top = np.pad(top, ((0, 0), (0, slots + 1 - keep)))
    filled = np.isfinite(ranked[:, :slots])
    below = np.where(np.isfinite(ranked[:, 1:slots + 1]), ranked[:, 1:slots + 1], 0.0)
    pick = lambda x: np.take_along_axis(x, top[:, :slots], 1)  # noqa: E731
    own_factor, own_bid, own_reserve = pick(factor), pick(bid), pick(reserve)
    computed = np.maximum(0, np.ceil(below / np.where(filled, own_factor, 1.0) - 1e-6)) + setup.increment_micros
    price = np.minimum(own_bid, np.maximum(computed, own_reserve))
    return np.where(filled, pick(ad), -1), np.where(filled, price, 0.0)


@dataclass
class Requests:
    """The test-day requests the slates are served for, with their model inputs and the truth over the catalog."""

    user: np.ndarray             # [R]
    query: np.ndarray            # [R, D] float32: E_user + E_ctx
    user_embedding: torch.Tensor  # [R, D]
    context_embedding: torch.Tensor  # [R, D]
    true_ctr_logit: np.ndarray   # [R, A] at the top position
    true_cvr: np.ndarray         # [R, A]

    def head(self, count: int) -> "Requests":
        return Requests(**{name: value[:count] for name, value in vars(self).items()})


def sample_requests(model: AdModel, featurizer: Featurizer, rows: np.ndarray) -> Requests:
    world = featurizer.world
    log = world.impressions
    with torch.no_grad():
        embedded = embed(model, featurizer.rows(rows))
    column = lambda values: values[rows][:, None]  # noqa: E731
    all_ads = np.arange(len(world.ads))[None, :]
    ctr_logit = true_ctr_logit(world, column(log.user), all_ads, column(log.placement), column(log.intent), column(log.query),
                               column(log.device), column(log.hour), np.zeros((1, 1), dtype=np.int64))
    cvr = sigmoid(true_cvr_logit(world, column(log.user), all_ads, column(log.placement), column(log.intent)))
    return Requests(user=log.user[rows], query=(embedded.user + embedded.context).numpy(), user_embedding=embedded.user,
                    context_embedding=embedded.context, true_ctr_logit=ctr_logit, true_cvr=cvr)


def model_probabilities(model: AdModel, featurizer: Featurizer, requests: Requests, ads: np.ndarray, ad_embeddings: np.ndarray,
                        calibrators: dict) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated (pCTR, pCVR) the model gives the ads [R, N] of each request, at the top position."""
    users = np.repeat(requests.user, ads.shape[1])
    pair = featurizer.pair_features(users, ads.reshape(-1)).reshape(*ads.shape, -1)
    with torch.no_grad():
        ctr, cvr = score(model, requests.user_embedding, requests.context_embedding, torch.from_numpy(ad_embeddings[ads]),
                         torch.from_numpy(pair), torch.from_numpy(ad_ids(featurizer.world, ads)))
    return calibration.apply(calibrators["ctr"], ctr.numpy()), calibration.apply(calibrators["cvr"], cvr.numpy())


def slate_value(requests: Requests, catalog: Catalog, winners: np.ndarray, prices: np.ndarray) -> tuple[float, float]:
    """Total true expected clicks and revenue (micros) of the slates; slot k takes the world's position-k click bias."""
    served = winners >= 0
    ad = np.maximum(winners, 0)
    positions = np.minimum(np.arange(winners.shape[1]), len(POSITION_BIAS) - 1)
    p_click = sigmoid(np.take_along_axis(requests.true_ctr_logit, ad, 1) + POSITION_BIAS[positions]) * served
    p_convert = np.take_along_axis(requests.true_cvr, ad, 1)
    bid_type = catalog.bid_type[ad]
    events = np.where(bid_type == CPM, 1 / 1000, np.where(bid_type == CPA, p_click * p_convert, p_click))
    return float(p_click.sum()), float((prices * events * served).sum())


def run_auction(ads, p_ctr, p_cvr, relevance, catalog: Catalog, slots: int, setup: ServingSetup):
    bid_type, landing = catalog.bid_type[ads], catalog.landing[ads]
    quality = quality_scores(bid_type, p_ctr, p_cvr, relevance, landing, setup)
    return gsp(ads, bid_type, catalog.bid_micros[ads], p_ctr, p_cvr, quality, slots, setup)


def slate_quality(model: AdModel, featurizer: Featurizer, rows: np.ndarray, calibrators: dict, ad_embeddings: np.ndarray,
                  slot_counts: tuple[int, ...] = (1, 4), exhaustive_requests: int = 0, setup: ServingSetup = ServingSetup(),
                  chunk: int = 64) -> dict:
    """Sums each pipeline's expected clicks and revenue over the requests (`rows`, impression rows
    whose context becomes a request); the first `exhaustive_requests` of them are also scored over the whole catalog."""
    catalog = catalog_columns(featurizer, setup)
    ad_count = len(catalog.bid_type)
    totals = {slots: {name: np.zeros(2) for name in [*PIPELINES, "exhaustive_subset_served", "exhaustive_subset_model"]} for slots in slot_counts}
    for start in range(0, len(rows), chunk):
        requests = sample_requests(model, featurizer, rows[start:start + chunk])
        similarity = requests.query @ ad_embeddings.T
        # The engine's lightweight score, floored as the auction's relevance.
        light = (setup.light_similarity * (similarity + 1) / 2 + catalog.prior[None, :]).astype(np.float32)
        relevance = np.maximum(light, np.float32(1e-6)).astype(np.float64)
        retrieved = np.argpartition(-similarity, min(setup.ann_candidates, ad_count) - 1, axis=1)[:, :setup.ann_candidates]
        kept = min(setup.score_candidates, retrieved.shape[1])
        candidates = np.take_along_axis(retrieved, np.argpartition(-np.take_along_axis(light, retrieved, 1), kept - 1, axis=1)[:, :kept], 1)
        model_ctr, model_cvr = model_probabilities(model, featurizer, requests, candidates, ad_embeddings, calibrators)
        truth = lambda ads: (sigmoid(np.take_along_axis(requests.true_ctr_logit, ads, 1)), np.take_along_axis(requests.true_cvr, ads, 1))  # noqa: E731
        everything = np.broadcast_to(np.arange(ad_count), similarity.shape)
        sets = {"oracle": (everything, *truth(everything)), "truth_on_retrieved": (retrieved, *truth(retrieved)),
                "truth_on_candidates": (candidates, *truth(candidates)), "served": (candidates, model_ctr, model_cvr)}
        subset = max(0, min(exhaustive_requests - start, len(candidates)))
        if subset:
            head = requests.head(subset)
            everything_head = everything[:subset]
            exhaustive_ctr, exhaustive_cvr = exhaustive_probabilities(model, featurizer, head, everything_head, ad_embeddings, calibrators)
        for slots in slot_counts:
            for name, (ads, p_ctr, p_cvr) in sets.items():
                winners, prices = run_auction(ads, p_ctr, p_cvr, np.take_along_axis(relevance, ads, 1), catalog, slots, setup)
                totals[slots][name] += slate_value(requests, catalog, winners, prices)
                if name == "served" and subset:
                    totals[slots]["exhaustive_subset_served"] += slate_value(head, catalog, winners[:subset], prices[:subset])
            if subset:
                winners, prices = run_auction(everything_head, exhaustive_ctr, exhaustive_cvr, relevance[:subset], catalog, slots, setup)
                totals[slots]["exhaustive_subset_model"] += slate_value(head, catalog, winners, prices)
    return {"requests": int(len(rows)), "exhaustive_requests": int(min(exhaustive_requests, len(rows))),
            "ann_candidates": min(setup.ann_candidates, ad_count), "score_candidates": min(setup.score_candidates, setup.ann_candidates, ad_count),
            "slots": {str(slots): summarise(totals[slots], len(rows)) for slots in slot_counts}}


def exhaustive_probabilities(model, featurizer, requests: Requests, ads: np.ndarray, ad_embeddings, calibrators, width: int = 2048):
    """model_probabilities over the whole catalog, in slices of ads so the fusion input stays small."""
    parts = [model_probabilities(model, featurizer, requests, np.ascontiguousarray(ads[:, s:s + width]), ad_embeddings, calibrators)
             for s in range(0, ads.shape[1], width)]
    return np.concatenate([p[0] for p in parts], axis=1), np.concatenate([p[1] for p in parts], axis=1)


def summarise(totals: dict, requests: int) -> dict:
    """Per-request means, shares of the oracle, and the loss split (retrieval + lightweight cut + ranking = oracle - served)."""
    out = {}
    for index, metric in enumerate(["clicks", "revenue_micros"]):
        value = {name: float(total[index]) for name, total in totals.items()}
        oracle = value["oracle"]
        share = lambda x: x / oracle if oracle > 0 else float("nan")  # noqa: E731
        out[metric] = {
            "per_request": {name: value[name] / requests for name in PIPELINES},
            "share_of_oracle": {name: share(value[name]) for name in PIPELINES[1:]},
            "loss": {"retrieval": share(oracle - value["truth_on_retrieved"]),
                     "lightweight_cut": share(value["truth_on_retrieved"] - value["truth_on_candidates"]),
                     "ranking": share(value["truth_on_candidates"] - value["served"]), "total": share(oracle - value["served"])},
            # Same requests both ways: a slate from model scores over the whole catalog against the served one.
            "exhaustive_gain": (value["exhaustive_subset_model"] / value["exhaustive_subset_served"] - 1
                                if value["exhaustive_subset_served"] > 0 else None),
        }
    return out
