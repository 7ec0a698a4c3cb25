"""Writes the model directory adserve serves: manifest.json, model.pt, the trained ads' tensor files
keyed by ad_ids.txt, and catalog.jsonl, the demo catalog a new catalog store is seeded from.

Tensor files are raw little-endian arrays; the manifest gives each one's dtype, shape and SHA-256.
Row i of every ad tensor is the ad on line i of ad_ids.txt; the ids ascend (bytewise), so serving
joins them with the store's ads, read in id order, in one pass.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from . import text
from .dlrm import DLRM
from .features import (AD_ID_COLUMNS, AD_NUMERIC, CONTEXT_NUMERIC, CTR_PRIOR_STRENGTH, CVR_PRIOR_STRENGTH, PAIR_FEATURES, USER_NUMERIC,
                       FeatureStore, Featurizer, ad_categorical, ad_numeric_raw, smoothed_logit)
from .fit import embed
from .model import AdModel
from .presets import Preset
from .world import (AGE_BUCKETS, BID_TYPES, CATEGORIES, COUNTRIES, DEVICES, FORMATS, GENDERS, LANGUAGES, PLACEMENTS,
                    REFERENCE_YEAR, Ads, World, make_ads)

PARITY_TOLERANCE = 1e-5
MANIFEST_VERSION = 1


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class TensorWriter:
    """Writes arrays (whole or in row chunks) and records their contracts for the manifest."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.entries: dict[str, dict] = {}

    def write(self, name: str, array: np.ndarray) -> None:
        self.append(name, array, first=True)

    def append(self, name: str, array: np.ndarray, first: bool = False) -> None:
        array = np.ascontiguousarray(array)
        dtype = {np.dtype(np.float32): "float32", np.dtype(np.int64): "int64", np.dtype(np.int32): "int32"}[array.dtype]
        with open(self.directory / name, "wb" if first else "ab") as handle:
            handle.write(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
        entry = self.entries.get(name) if not first else None
        shape = list(array.shape) if entry is None else [entry["shape"][0] + array.shape[0], *array.shape[1:]]
        self.entries[name] = {"dtype": dtype, "shape": shape}

    def finish(self) -> dict:
        for name, entry in self.entries.items():
            entry["sha256"] = sha256(self.directory / name)
        return self.entries


def feature_spec(preset: Preset, store: FeatureStore) -> dict:
    return {
        "hashing": {
            "doc": "train/text.py: tokens are runs of ASCII [a-z0-9] after ASCII lower-casing; bucket = fnv1a32(utf8) % (buckets - 2) + 2; 0 = padding, 1 = empty text",
            "query": {"buckets": preset.query_buckets, "max_tokens": preset.max_query_tokens},
            "title": {"buckets": preset.title_buckets, "max_tokens": preset.max_title_tokens},
            "product": {"buckets": preset.product_buckets, "doc": "whole product_id string hashed, no tokenising; 0 when absent"},
        },
        "user": {
            "categorical": [
                {"name": "age_bucket", "source": "user.yob", "reference_year": REFERENCE_YEAR, "buckets": [list(b) for b in AGE_BUCKETS],
                 "doc": "index + 1 of the bucket holding reference_year - yob; 0 when yob is 0 or outside every bucket"},
                {"name": "gender", "source": "user.gender", "vocabulary": GENDERS, "doc": "equals the FlatBuffers Gender enum value"},
                {"name": "country", "source": "geo.country", "vocabulary": COUNTRIES, "doc": "index + 1, 0 when absent or unknown"},
                {"name": "language", "source": "device.language", "vocabulary": LANGUAGES,
                 "doc": "primary subtag of the BCP 47 tag, lower-cased; index + 1, 0 when unknown"},
            ],
            "numeric": {"names": [*USER_NUMERIC, "user_known"], "mean": [*map(float, store.user_standardizer.mean), 0.0],
                        "std": [*map(float, store.user_standardizer.std), 1.0],
                        "unknown_user": "every value 0 (the standardised mean) and user_known 0"},
        },
        "context": {
            "categorical": [
                {"name": "placement", "vocabulary": PLACEMENTS, "doc": "equals the FlatBuffers Placement enum value"},
                {"name": "hour", "doc": "local hour (timestamp_ms + utc_offset_minutes) + 1; 0 when no timestamp"},
                {"name": "weekday", "doc": "local weekday, Monday = 0, + 1; 0 when no timestamp"},
                {"name": "device", "vocabulary": DEVICES, "doc": "equals the FlatBuffers DeviceType enum value"},
            ],
            "numeric": {"names": CONTEXT_NUMERIC, "doc": "log_page = log1p(request.page), not standardised"},
            "search": {"method": "context_embed_search", "placements": ["Search"]},
            "browse": {"method": "context_embed_browse", "placements": [p for p in PLACEMENTS if p != "Search"],
                       "category": {"source": "category_id", "vocabulary": CATEGORIES, "doc": "index + 1, 0 when absent"},
                       "product": {"source": "product_id", "hashing": "product"}},
        },
        "ad": {
            "categorical": [
                {"name": "advertiser", "vocabulary": [f"adv{index:05d}" for index in range(preset.advertisers)],
                 "doc": "index + 1 of the ad's advertiser id, 0 for one the model was not trained with"},
                {"name": "category", "vocabulary": CATEGORIES},
                {"name": "format", "vocabulary": FORMATS},
                {"name": "bid_type", "vocabulary": BID_TYPES},
            ],
            "title": {"hashing": "title"},
            "numeric": {"names": AD_NUMERIC, "mean": [*map(float, store.ad_standardizer.mean)], "std": [*map(float, store.ad_standardizer.std)],
                        "doc": "ctr_logit / cvr_logit smoothed toward the global rates; a new ad has 0 impressions"},
        },
        "pair": {
            "names": PAIR_FEATURES,
            "unknown": [float(smoothed_logit(np.zeros(1), np.zeros(1), store.global_ctr, CTR_PRIOR_STRENGTH)[0]), 0.0,
                        float(-np.log(len(CATEGORIES))), float(smoothed_logit(np.zeros(1), np.zeros(1), store.global_cvr, CVR_PRIOR_STRENGTH)[0]), 0.0],
            "doc": "user x category from user_category.f32 [users, categories, 3]; user x advertiser from the CSR user_advertiser_* files; "
                   "'unknown' holds the values for a pair with no history",
        },
        "priors": {"global_ctr": store.global_ctr, "global_cvr": store.global_cvr, "ctr_strength": CTR_PRIOR_STRENGTH,
                   "cvr_strength": CVR_PRIOR_STRENGTH},
    }


def method_contracts(preset: Preset, scorer: str) -> dict:
    d, tq, tt = preset.embedding_dim, preset.max_query_tokens, preset.max_title_tokens
    nu, na, nc, p = len(USER_NUMERIC) + 1, len(AD_NUMERIC), len(CONTEXT_NUMERIC), len(PAIR_FEATURES)
    return {
        "user_embed": {"inputs": [["categorical", "int64", ["B", 4]], ["numeric", "float32", ["B", nu]]], "outputs": [["embedding", "float32", ["B", d]]]},
        "context_embed_search": {"inputs": [["tokens", "int64", ["B", tq]], ["categorical", "int64", ["B", 4]], ["numeric", "float32", ["B", nc]]],
                                 "outputs": [["embedding", "float32", ["B", d]]]},
        "context_embed_browse": {"inputs": [["category", "int64", ["B"]], ["product", "int64", ["B"]], ["categorical", "int64", ["B", 4]],
                                            ["numeric", "float32", ["B", nc]]], "outputs": [["embedding", "float32", ["B", d]]]},
        "ad_embed": {"inputs": [["categorical", "int64", ["N", 4]], ["title", "int64", ["N", tt]], ["numeric", "float32", ["N", na]]],
                     "outputs": [["embedding", "float32", ["N", d]]]},
        "score": {"inputs": [["user", "float32", ["B", d]], ["context", "float32", ["B", d]], ["ads", "float32", ["B", "N", d]],
                             ["pair", "float32", ["B", "N", p]],
                             *([["ad_ids", "int64", ["B", "N", len(AD_ID_COLUMNS)], AD_ID_COLUMNS]] if scorer == "dlrm" else [])],
                  "outputs": [["ctr_logit", "float32", ["B", "N"]], ["cvr_logit", "float32", ["B", "N"]]]},
    }


def check_torchscript(model: AdModel | DLRM, path: Path, featurizer: Featurizer, rows: np.ndarray) -> float:
    """Loads model.pt back and returns the largest difference from the eager model over every method."""
    loaded = torch.jit.load(str(path))
    batch = featurizer.rows(rows)
    t = torch.from_numpy
    search = batch.is_search
    worst = 0.0
    with torch.no_grad():
        pairs = [
            (model.user_embed(t(batch.user_categorical), t(batch.user_numeric)), loaded.user_embed(t(batch.user_categorical), t(batch.user_numeric))),
            (model.ad_embed(t(batch.ad_categorical), t(batch.ad_title), t(batch.ad_numeric)), loaded.ad_embed(t(batch.ad_categorical), t(batch.ad_title), t(batch.ad_numeric))),
        ]
        if search.any():
            args = (t(batch.query_tokens[search]), t(batch.context_categorical[search]), t(batch.context_numeric[search]))
            pairs.append((model.context_embed_search(*args), loaded.context_embed_search(*args)))
        if (~search).any():
            args = (t(batch.page_category[~search]), t(batch.page_product[~search]), t(batch.context_categorical[~search]), t(batch.context_numeric[~search]))
            pairs.append((model.context_embed_browse(*args), loaded.context_embed_browse(*args)))
        e = embed(model, batch)
        candidates = [x.unsqueeze(0).expand(len(rows), *x.shape) for x in (e.ad, e.pair, e.ad_ids)]
        arguments = (e.user, e.context, *candidates) if isinstance(model, DLRM) else (e.user, e.context, *candidates[:2])
        eager, scripted = model.score(*arguments), loaded.score(*arguments)
        pairs += [(eager[0], scripted[0]), (eager[1], scripted[1])]
        for a, b in pairs:
            worst = max(worst, float((a - b).abs().max()))
    return worst


def catalog_json(world: World, preset: Preset) -> dict:
    ads = world.ads
    campaigns = [{"id": f"c{index:06d}", "advertiser_id": f"adv{int(advertiser):05d}", "bid_type": BID_TYPES[int(ads.campaign_bid_type[index])],
                  "bid_micros": int(ads.campaign_bid_micros[index]),
                  "daily_budget_micros": int(ads.campaign_bid_micros[index]) * (20 if ads.campaign_bid_type[index] == 1 else 200),
                  "lifetime_budget_micros": int(ads.campaign_bid_micros[index]) * (20 if ads.campaign_bid_type[index] == 1 else 200) * 30,
                  "pacing": "even", "status": "active",
                  # Every third campaign caps impressions per user: 3 an hour.
                  **({"frequency_cap": {"impressions": 3, "window_seconds": 3600}} if index % 3 == 0 else {})}
                 for index, advertiser in enumerate(ads.campaign_advertiser)]
    return {
        "advertisers": [{"id": f"adv{index:05d}", "name": brand.capitalize(), "category": CATEGORIES[int(ads.advertiser_category[index])]}
                        for index, brand in enumerate(ads.brands)],
        "campaigns": campaigns,
        "ads": ad_records(ads, 0, campaigns, np.random.default_rng(preset.seed + 11)),
    }


def demo_targeting(rng: np.random.Generator, ads: Ads, index: int) -> list[list[dict]]:
    """Boolean targeting (DNF) for a share of the demo catalog, so serving exercises the matcher:
    20 % keyword-or-category ads, 10 % ads limited to two countries, and a negative keyword on 5 %.
    Targeting only restricts where an ad may show; the world's logging policy ignores it."""
    draw = rng.random()
    words = ads.title[index].split()[1:]
    if draw < 0.2:
        rules = [[{"type": "phrase", "value": " ".join(words[:2])}], [{"type": "category", "value": CATEGORIES[int(ads.category[index])]}]]
    elif draw < 0.3:
        rules = [[{"type": "geo", "value": country}] for country in rng.choice(COUNTRIES, size=2, replace=False)]
    else:
        rules = []
    if rng.random() < 0.05:
        negative = {"type": "negative", "value": "used", "not": True}
        rules = [rule + [negative] for rule in rules] if rules else [[negative]]
    return rules


def ad_records(ads: Ads, offset: int, campaigns: list[dict], rng: np.random.Generator) -> list[dict]:
    """Catalog entries for ads whose dense ad index starts at offset."""
    ids, products = ads.ids(offset), ads.product_ids(offset)
    return [{"id": ids[index], "campaign_id": campaigns[int(ads.campaign[index])]["id"],
             "advertiser_id": f"adv{int(ads.advertiser[index]):05d}", "product_id": products[index],
             "category": CATEGORIES[int(ads.category[index])], "format": FORMATS[int(ads.format[index])],
             "title": ads.title[index].title(), "keywords": ads.title[index].split()[1:],
             "landing_url": f"https://shop.example/{products[index]}", "image_url": f"https://img.example/{products[index]}.jpg",
             "price_micros": int(round(float(np.exp(ads.log_price[index])) * 1e6)),
             "landing_quality": round(float(ads.landing_quality[index]), 4), "rating": round(float(ads.rating[index]), 2),
             "targeting": demo_targeting(rng, ads, index)}
            for index in range(len(ads))]


def export(directory: Path, model: AdModel | DLRM, world: World, store: FeatureStore, featurizer: Featurizer, preset: Preset,
           calibrators: dict, report: dict, log=print) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    writer = TensorWriter(directory)
    t = torch.from_numpy
    with torch.no_grad():
        ad_embeddings = model.ad_embed(t(store.ad_categorical), t(store.ad_title), t(store.ad_numeric)).numpy()
        known = np.flatnonzero(store.user_known)
        user_embeddings = model.user_embed(t(store.user_categorical[known]), t(store.user_numeric[known])).numpy()
    writer.write("ad_embeddings.f32", ad_embeddings)
    writer.write("ad_categorical.i64", store.ad_categorical)
    writer.write("ad_title.i64", store.ad_title)
    writer.write("ad_numeric.f32", store.ad_numeric)
    writer.write("user_embeddings.f32", user_embeddings)
    user_category = np.stack([smoothed_logit(store.user_category_clicks[known], store.user_category_impressions[known], store.global_ctr, CTR_PRIOR_STRENGTH),
                              np.log1p(store.user_category_impressions[known]), store.user_category_log_view_share[known]], axis=2).astype(np.float32)
    writer.write("user_category.f32", user_category)
    write_user_advertiser_csr(writer, store, known, preset)
    with CatalogWriter(directory) as catalog_writer:
        catalog = catalog_json(world, preset)
        catalog_writer.write(catalog)
        if preset.extra_catalog_ads:
            extend_catalog(writer, catalog_writer, catalog["campaigns"], model, world, store, preset, log)
    user_ids = world.users.ids
    (directory / "users.json").write_text(json.dumps({"ids": [user_ids[i] for i in known]}))

    scripted = torch.jit.script(model)
    model_path = directory / "model.pt"
    scripted.save(str(model_path))
    parity_rows = np.flatnonzero(world.impressions.day >= preset.history_days)[:64]
    parity = check_torchscript(model, model_path, featurizer, parity_rows)
    if parity > PARITY_TOLERANCE:
        raise SystemExit(f"TorchScript round trip differs from eager by {parity:g} (> {PARITY_TOLERANCE:g})")
    log(f"TorchScript round trip: max |eager - loaded| = {parity:.2e}")

    files = writer.finish()
    scorer = "dlrm" if isinstance(model, DLRM) else "multitower"
    for name in ["ad_ids.txt", "catalog.jsonl", "users.json", "model.pt"]:
        files[name] = {"sha256": sha256(directory / name)}
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "version": f"{preset.name}-{files['model.pt']['sha256'][:12]}",
        "preset": preset.name,
        "seed": preset.seed,
        "scorer": scorer,
        "embedding_dim": preset.embedding_dim,
        "placements": PLACEMENTS,
        "categories": CATEGORIES,
        # The campaign codes the model was trained with (a DLRM's campaign id rows): serving numbers them so.
        "campaigns": [campaign["id"] for campaign in catalog["campaigns"]],
        "features": feature_spec(preset, store),
        "methods": method_contracts(preset, scorer),
        "calibration": calibrators,
        "torchscript_parity_max_abs_diff": parity,
        "metrics": summary_metrics(report),
        "files": files,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


class CatalogWriter:
    """ad_ids.txt (one id a line, in row order) and catalog.jsonl: one advertiser, campaign or ad a line
    with its `kind`, the catalog import format (docs/catalog_store.md), advertisers and campaigns first.
    Written as it comes, so a catalog of millions of ads is never held whole."""

    def __init__(self, directory: Path):
        self.ids = open(directory / "ad_ids.txt", "w")
        self.lines = open(directory / "catalog.jsonl", "w")
        self.last_id = ""

    def __enter__(self) -> "CatalogWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.ids.close()
        self.lines.close()

    def write(self, catalog: dict) -> None:
        for kind, section in [("advertiser", "advertisers"), ("campaign", "campaigns")]:
            for row in catalog.get(section, []):
                self.lines.write(json.dumps({"kind": kind, **row}) + "\n")
        for row in catalog.get("ads", []):
            if row["id"] <= self.last_id:
                raise SystemExit("ad ids must ascend in row order")
            self.last_id = row["id"]
            self.ids.write(f"{row['id']}\n")
            self.lines.write(json.dumps({"kind": "ad", **row}) + "\n")


def write_user_advertiser_csr(writer: TensorWriter, store: FeatureStore, known: np.ndarray, preset: Preset) -> None:
    users = store.user_advertiser_keys // preset.advertisers
    row_of_user = np.full(len(store.user_known), -1, dtype=np.int64)
    row_of_user[known] = np.arange(len(known))
    rows = row_of_user[users]  # keys only exist for known users
    indptr = np.zeros(len(known) + 1, dtype=np.int32)
    np.add.at(indptr, rows + 1, 1)
    writer.write("user_advertiser_indptr.i32", np.cumsum(indptr).astype(np.int32))
    writer.write("user_advertiser_index.i32", (store.user_advertiser_keys % preset.advertisers).astype(np.int32))
    values = np.column_stack([smoothed_logit(store.user_advertiser_conversions, store.user_advertiser_clicks, store.global_cvr, CVR_PRIOR_STRENGTH),
                              np.log1p(store.user_advertiser_clicks)]).astype(np.float32)
    writer.write("user_advertiser_values.f32", values.reshape(-1, 2))


def extend_catalog(writer: TensorWriter, catalog_writer: CatalogWriter, campaigns: list[dict], model: AdModel, world: World, store: FeatureStore,
                   preset: Preset, log) -> None:
    """Adds preset.extra_catalog_ads new ads (no history) in chunks, for large-catalog benchmarks."""
    rng = np.random.default_rng(preset.seed + 7)
    chunk = 100_000
    offset = len(world.ads)
    for start in range(0, preset.extra_catalog_ads, chunk):
        count = min(chunk, preset.extra_catalog_ads - start)
        ads = make_ads(rng, count, preset.advertisers, world.category_log_price, world.ads.advertiser_category, world.ads.brands)
        zeros = np.zeros(count)
        numeric = store.ad_standardizer.apply(ad_numeric_raw(ads.log_price, ads.landing_quality, ads.rating, zeros, zeros, zeros, store.global_ctr, store.global_cvr))
        # Their campaigns are the world's (ad_records names them), so is the bid type the ad tower sees.
        categorical = ad_categorical(ads.advertiser, ads.category, ads.format, world.ads.campaign_bid_type[ads.campaign])
        title = np.array([text.token_buckets(t, preset.title_buckets, preset.max_title_tokens) for t in ads.title], dtype=np.int64)
        with torch.no_grad():
            embeddings = model.ad_embed(torch.from_numpy(categorical), torch.from_numpy(title), torch.from_numpy(numeric)).numpy()
        for name, array in [("ad_embeddings.f32", embeddings), ("ad_categorical.i64", categorical), ("ad_title.i64", title), ("ad_numeric.f32", numeric)]:
            writer.append(name, array)
        catalog_writer.write({"ads": ad_records(ads, offset + start, campaigns, rng)})
        log(f"catalog: {offset + start + count} ads")


def summary_metrics(report: dict) -> dict:
    return {
        "ctr_auc": report["ctr"]["model_calibrated"]["auc"], "ctr_auc_ground_truth": report["ctr"]["ground_truth"]["auc"],
        "ctr_log_loss": report["ctr"]["model_calibrated"]["log_loss"], "ctr_ece_after_calibration": report["ctr_ece"]["after"],
        "cvr_auc": report["cvr_on_clicks"]["model_calibrated"]["auc"], "ctcvr_auc": report["ctcvr"]["model_calibrated"]["auc"],
        **{k: v for k, v in report["retrieval"].items() if k.startswith("recall@")},
    }
