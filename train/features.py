"""Feature store and featurisation: the exact inputs of every tower, shared by training and export.

Time split (days): history | train | calibration | test. Feature-store aggregates (user CTR,
ad CTR and CVR, user x category CTR, user x advertiser conversion) are computed on the history
window only, so no row's own label can reach its features, and serving uses the same aggregates.

Missing-value rules:
- Categorical ids: index + 1; 0 means unknown or absent (anonymous age/gender, unseen country).
- Counts enter as log1p(count), then standardised with the mean/std of the training rows' tables.
- Rates enter as logit((k + a * p0) / (n + a)): Bayesian smoothing toward the global rate p0 with
  prior strength a, so an unseen pair (n = 0) gets exactly logit(p0).
- A user without a feature-store record gets the standardised value 0 for every user numeric (the
  mean) and user_known = 0; its pair features fall back to the priors above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import text
from .presets import Preset
from .world import AGE_BUCKETS, CATEGORIES, REFERENCE_YEAR, World

CTR_PRIOR_STRENGTH = 20.0
CVR_PRIOR_STRENGTH = 5.0

USER_NUMERIC = ["log_sessions_30d", "log_orders_30d", "log_ad_clicks_30d", *[f"log_views_30d_{c}" for c in CATEGORIES], "log_impressions", "ctr_logit"]
AD_NUMERIC = ["log_price", "landing_quality", "rating", "ctr_logit", "cvr_logit", "log_impressions"]
CONTEXT_NUMERIC = ["log_page"]
PAIR_FEATURES = ["user_category_ctr_logit", "user_category_log_impressions", "user_category_log_view_share_30d",
                 "user_advertiser_cvr_logit", "user_advertiser_log_clicks"]


def smoothed_logit(successes: np.ndarray, trials: np.ndarray, prior: float, strength: float) -> np.ndarray:
    rate = (successes + strength * prior) / (trials + strength)
    return np.log(rate) - np.log1p(-rate)


@dataclass
class Standardizer:
    mean: np.ndarray
    std: np.ndarray

    @staticmethod
    def fit(values: np.ndarray) -> "Standardizer":
        std = values.std(axis=0)
        return Standardizer(mean=values.mean(axis=0), std=np.where(std > 1e-6, std, 1.0))

    def apply(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) / self.std).astype(np.float32)


@dataclass
class FeatureStore:
    """History-window aggregates plus the standardised per-user and per-ad feature tables."""

    global_ctr: float
    global_cvr: float
    user_known: np.ndarray            # [U] bool
    user_categorical: np.ndarray      # [U, 4] int64: age bucket, gender, country, language (+1, 0 unknown)
    user_numeric: np.ndarray          # [U, len(USER_NUMERIC) + 1] float32, standardised; last column user_known
    user_standardizer: Standardizer
    user_category_clicks: np.ndarray  # [U, C]
    user_category_impressions: np.ndarray  # [U, C]
    # log((views_c + 1) / (views + C)) over the 30-day views; log(1 / C) for users without a record.
    user_category_log_view_share: np.ndarray  # [U, C]
    # Sparse user x advertiser history: sorted keys user * advertisers + advertiser, with counts.
    user_advertiser_keys: np.ndarray  # [nnz] int64, ascending
    user_advertiser_clicks: np.ndarray  # [nnz]
    user_advertiser_conversions: np.ndarray  # [nnz]
    ad_categorical: np.ndarray        # [A, 4] int64: advertiser, category, format, bid type (+1)
    ad_title: np.ndarray              # [A, T] int64 token buckets
    ad_numeric: np.ndarray            # [A, len(AD_NUMERIC)] float32, standardised
    ad_standardizer: Standardizer
    ad_raw_numeric: np.ndarray        # [A, len(AD_NUMERIC)] before standardisation (for catalog extension)


def history_mask(world: World, preset: Preset) -> np.ndarray:
    return world.impressions.day < preset.history_days


def build_feature_store(world: World, preset: Preset) -> FeatureStore:
    users, ads, log = world.users, world.ads, world.impressions
    history = log.select(history_mask(world, preset))
    global_ctr = float(history.click.mean())
    global_cvr = float(history.conversion.sum() / max(1, history.click.sum()))
    categories = len(CATEGORIES)

    user_impressions = np.bincount(history.user, minlength=preset.users)
    user_clicks = np.bincount(history.user, weights=history.click, minlength=preset.users)
    # Only users with a feature-store record have aggregates; the rest are new or anonymous traffic.
    user_impressions = np.where(users.known, user_impressions, 0)
    user_clicks = np.where(users.known, user_clicks, 0)
    user_numeric_raw = np.column_stack([
        np.log1p(users.sessions_30d), np.log1p(users.orders_30d), np.log1p(users.ad_clicks_30d), np.log1p(users.views_30d),
        np.log1p(user_impressions), smoothed_logit(user_clicks, user_impressions, global_ctr, CTR_PRIOR_STRENGTH),
    ])
    user_standardizer = Standardizer.fit(user_numeric_raw[users.known])
    user_numeric = user_standardizer.apply(user_numeric_raw)
    user_numeric[~users.known] = 0.0
    user_numeric = np.column_stack([user_numeric, users.known.astype(np.float32)]).astype(np.float32)
    user_categorical = np.column_stack([users.age_bucket + 1, users.gender + 1, users.country + 1, users.language + 1]).astype(np.int64)

    ad_category = ads.category[history.ad]
    flat = history.user * categories + ad_category
    user_category_impressions = np.bincount(flat, minlength=preset.users * categories).reshape(preset.users, categories)
    user_category_clicks = np.bincount(flat, weights=history.click, minlength=preset.users * categories).reshape(preset.users, categories)
    user_category_impressions[~users.known] = 0
    user_category_clicks[~users.known] = 0

    clicked = np.flatnonzero(history.click & users.known[history.user])
    pair_keys = history.user[clicked] * preset.advertisers + ads.advertiser[history.ad[clicked]]
    keys, inverse = np.unique(pair_keys, return_inverse=True)
    pair_clicks = np.bincount(inverse, minlength=len(keys))
    pair_conversions = np.bincount(inverse, weights=history.conversion[clicked], minlength=len(keys))

    ad_impressions = np.bincount(history.ad, minlength=len(ads))
    ad_clicks = np.bincount(history.ad, weights=history.click, minlength=len(ads))
    ad_conversions = np.bincount(history.ad, weights=history.conversion, minlength=len(ads))
    ad_raw = ad_numeric_raw(ads.log_price, ads.landing_quality, ads.rating, ad_clicks, ad_impressions, ad_conversions, global_ctr, global_cvr)
    ad_standardizer = Standardizer.fit(ad_raw)
    return FeatureStore(
        global_ctr=global_ctr, global_cvr=global_cvr, user_known=users.known, user_categorical=user_categorical,
        user_numeric=user_numeric, user_standardizer=user_standardizer, user_category_clicks=user_category_clicks,
        user_category_impressions=user_category_impressions,
        user_category_log_view_share=np.log((users.views_30d + 1.0) / (users.views_30d.sum(axis=1, keepdims=True) + categories)),
        user_advertiser_keys=keys.astype(np.int64),
        user_advertiser_clicks=pair_clicks, user_advertiser_conversions=pair_conversions,
        ad_categorical=ad_categorical(ads.advertiser, ads.category, ads.format, ads.bid_type),
        ad_title=np.array([text.token_buckets(title, preset.title_buckets, preset.max_title_tokens) for title in ads.title], dtype=np.int64),
        ad_numeric=ad_standardizer.apply(ad_raw), ad_standardizer=ad_standardizer, ad_raw_numeric=ad_raw,
    )


def ad_numeric_raw(log_price, landing_quality, rating, clicks, impressions, conversions, global_ctr, global_cvr) -> np.ndarray:
    return np.column_stack([
        log_price, landing_quality, rating, smoothed_logit(clicks, impressions, global_ctr, CTR_PRIOR_STRENGTH),
        smoothed_logit(conversions, clicks, global_cvr, CVR_PRIOR_STRENGTH), np.log1p(impressions),
    ])


def ad_categorical(advertiser, category, format_, bid_type) -> np.ndarray:
    return np.column_stack([advertiser + 1, category + 1, format_ + 1, bid_type + 1]).astype(np.int64)


# Columns of a row's ad ids, the order the engine fills them in for a scorer that reads them (the DLRM).
AD_ID_COLUMNS = ["ad", "campaign", "advertiser", "category"]


def ad_ids(world: World, ad: np.ndarray) -> np.ndarray:
    """[...] dense ad indexes -> [..., 4] int64 (ad, campaign code, advertiser, category), all 0-based."""
    ads = world.ads
    return np.stack([ad, ads.campaign[ad], ads.advertiser[ad], ads.category[ad]], axis=-1).astype(np.int64)


def age_bucket_of_yob(yob: int) -> int:
    """Age bucket index + 1 from a year of birth (0 when unknown), against REFERENCE_YEAR."""
    if yob <= 0:
        return 0
    age = REFERENCE_YEAR - yob
    for index, (low, high) in enumerate(AGE_BUCKETS):
        if low <= age <= high:
            return index + 1
    return 0


@dataclass
class Batch:
    """Model inputs for a set of impression rows (tensors are built by the caller)."""

    user_categorical: np.ndarray
    user_numeric: np.ndarray
    context_categorical: np.ndarray  # [n, 4]: placement, hour, weekday, device (+1)
    context_numeric: np.ndarray      # [n, 1]
    query_tokens: np.ndarray         # [n, Tq]
    page_category: np.ndarray        # [n]
    page_product: np.ndarray         # [n]
    is_search: np.ndarray            # [n] bool
    ad_categorical: np.ndarray
    ad_title: np.ndarray
    ad_numeric: np.ndarray
    pair: np.ndarray                 # [n, len(PAIR_FEATURES)]
    ad_ids: np.ndarray               # [n, len(AD_ID_COLUMNS)]

    def take(self, index: np.ndarray) -> "Batch":
        return Batch(**{name: value[index] for name, value in vars(self).items()})


class Featurizer:
    """Turns impression rows into tower inputs; caches per-query and per-product hashing."""

    def __init__(self, world: World, store: FeatureStore, preset: Preset):
        self.world, self.store, self.preset = world, store, preset
        self.query_tokens = np.array([text.token_buckets(q, preset.query_buckets, preset.max_query_tokens) for q in world.queries]
                                     or np.zeros((0, preset.max_query_tokens)), dtype=np.int64).reshape(-1, preset.max_query_tokens)
        self.product_bucket = np.array([text.bucket(p, preset.product_buckets) for p in world.ads.product_ids()], dtype=np.int64)

    def pair_features(self, user: np.ndarray, ad: np.ndarray) -> np.ndarray:
        store, ads = self.store, self.world.ads
        category = ads.category[ad]
        impressions = store.user_category_impressions[user, category]
        clicks = store.user_category_clicks[user, category]
        keys = user * self.preset.advertisers + ads.advertiser[ad]
        table = store.user_advertiser_keys
        pair_clicks, pair_conversions = np.zeros(len(keys)), np.zeros(len(keys))
        if len(table):
            slot = np.minimum(np.searchsorted(table, keys), len(table) - 1)
            found = table[slot] == keys
            pair_clicks[found] = store.user_advertiser_clicks[slot[found]]
            pair_conversions[found] = store.user_advertiser_conversions[slot[found]]
        return np.column_stack([
            smoothed_logit(clicks, impressions, store.global_ctr, CTR_PRIOR_STRENGTH), np.log1p(impressions),
            store.user_category_log_view_share[user, category],
            smoothed_logit(pair_conversions, pair_clicks, store.global_cvr, CVR_PRIOR_STRENGTH), np.log1p(pair_clicks),
        ]).astype(np.float32)

    def rows(self, rows: np.ndarray) -> Batch:
        log, store = self.world.impressions, self.store
        user, ad = log.user[rows], log.ad[rows]
        query = log.query[rows]
        tokens = np.where((query >= 0)[:, None], self.query_tokens[np.maximum(query, 0)] if len(self.query_tokens) else 0, 0)
        product_ad = log.product_ad[rows]
        return Batch(
            user_categorical=store.user_categorical[user], user_numeric=store.user_numeric[user],
            context_categorical=np.column_stack([log.placement[rows] + 1, log.hour[rows] + 1, log.weekday[rows] + 1, log.device[rows] + 1]).astype(np.int64),
            context_numeric=np.log1p(log.page[rows]).astype(np.float32)[:, None],
            query_tokens=tokens.astype(np.int64), page_category=(log.page_category[rows] + 1).astype(np.int64),
            page_product=np.where(product_ad >= 0, self.product_bucket[np.maximum(product_ad, 0)], 0).astype(np.int64),
            is_search=query >= 0, ad_categorical=store.ad_categorical[ad], ad_title=store.ad_title[ad], ad_numeric=store.ad_numeric[ad],
            pair=self.pair_features(user, ad), ad_ids=ad_ids(self.world, ad),
        )
