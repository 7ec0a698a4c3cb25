"""Sizes of the synthetic world and of training, per preset."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Preset:
    name: str
    users: int
    advertisers: int
    ads: int
    # Impressions per day of the log; days are split into history | train | calibration | test.
    impressions_per_day: int
    history_days: int = 7
    train_days: int = 14
    calibration_days: int = 3
    test_days: int = 3
    # Share of users with no feature-store history (new or anonymous traffic).
    unknown_user_share: float = 0.08
    # Non-click rows kept for training, re-weighted by 1 / rate.
    negative_keep_rate: float = 0.25
    epochs: int = 4
    batch_size: int = 2048
    learning_rate: float = 3e-3
    retrieval_loss_weight: float = 0.1
    # Auxiliary CVR BCE on clicked rows: 1.0 lifts CVR AUC most but costs CTR AUC (demo: gap 0.0200).
    cvr_loss_weight: float = 0.3
    retrieval_temperature: float = 0.1
    # Ads drawn uniformly from the catalog per step as extra retrieval-loss negatives (mixed negative
    # sampling; 0: in-batch only). Demo: the served slate's revenue share of the oracle 0.78 -> 0.84
    # (1 slot), recall@10 0.015 -> 0.063, CTR AUC 0.8039 -> 0.8060 (docs/model_quality.md).
    retrieval_catalog_negatives: int = 2048
    embedding_dim: int = 128
    query_buckets: int = 4096
    product_buckets: int = 8192
    title_buckets: int = 4096
    max_query_tokens: int = 8
    max_title_tokens: int = 8
    # Requests sampled from the test days for the retrieval recall evaluation.
    recall_requests: int = 300
    # Test-day requests the served slate is measured on (train/slate.py), and how many of them the
    # model also scores over the whole catalog (the costly part: a forward pass per ad).
    slate_requests: int = 2000
    slate_exhaustive_requests: int = 100
    # Ads exported beyond those the world was trained on (medium and large presets): streamed in chunks.
    extra_catalog_ads: int = 0
    seed: int = 20261123


PRESETS = {
    "tiny": Preset(name="tiny", users=600, advertisers=30, ads=400, impressions_per_day=1500, epochs=1,
                   batch_size=256, embedding_dim=32, recall_requests=50,
                   slate_requests=200, slate_exhaustive_requests=20, history_days=3, train_days=4,
                   calibration_days=1, test_days=1),
    "demo": Preset(name="demo", users=20_000, advertisers=400, ads=20_000, impressions_per_day=60_000),
    "medium": Preset(name="medium", users=20_000, advertisers=400, ads=20_000, impressions_per_day=60_000,
                     extra_catalog_ads=80_000),
    "large": Preset(name="large", users=50_000, advertisers=4_000, ads=50_000, impressions_per_day=60_000,
                    extra_catalog_ads=1_000_000),
    # 10M ads: the large world and model, its catalog extended to ten million (docs/catalog_store.md, "Scale").
    "huge": Preset(name="huge", users=50_000, advertisers=4_000, ads=50_000, impressions_per_day=60_000,
                   extra_catalog_ads=9_950_000),
}


def preset(name: str, **overrides) -> Preset:
    if name not in PRESETS:
        raise SystemExit(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)
