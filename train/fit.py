"""Training: ESMM losses plus the in-batch retrieval loss, on negative-downsampled rows."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .features import AD_NUMERIC, CONTEXT_NUMERIC, PAIR_FEATURES, USER_NUMERIC, Batch, Featurizer
from .model import AdModel, ModelShape
from .presets import Preset
from .world import CATEGORIES, COUNTRIES, LANGUAGES


def model_shape(preset: Preset) -> ModelShape:
    return ModelShape(
        embedding_dim=preset.embedding_dim, countries=len(COUNTRIES), languages=len(LANGUAGES), categories=len(CATEGORIES),
        advertisers=preset.advertisers, user_numeric=len(USER_NUMERIC) + 1, ad_numeric=len(AD_NUMERIC),
        context_numeric=len(CONTEXT_NUMERIC), pair_features=len(PAIR_FEATURES), query_buckets=preset.query_buckets,
        product_buckets=preset.product_buckets, title_buckets=preset.title_buckets, max_query_tokens=preset.max_query_tokens,
    )


@dataclass
class Embedded:
    user: Tensor
    context: Tensor
    ad: Tensor
    pair: Tensor


def embed(model: AdModel, batch: Batch) -> Embedded:
    t = torch.from_numpy
    user = model.user_embed(t(batch.user_categorical), t(batch.user_numeric))
    context = torch.empty_like(user)
    search = t(batch.is_search)
    categorical, numeric = t(batch.context_categorical), t(batch.context_numeric)
    if bool(search.any()):
        context[search] = model.context_embed_search(t(batch.query_tokens)[search], categorical[search], numeric[search])
    browse = ~search
    if bool(browse.any()):
        context[browse] = model.context_embed_browse(t(batch.page_category)[browse], t(batch.page_product)[browse],
                                                     categorical[browse], numeric[browse])
    ad = model.ad_embed(t(batch.ad_categorical), t(batch.ad_title), t(batch.ad_numeric))
    return Embedded(user=user, context=context, ad=ad, pair=t(batch.pair))


def row_logits(model: AdModel, embedded: Embedded) -> tuple[Tensor, Tensor]:
    """Per-row (ctr_logit, cvr_logit) without the position term."""
    ctr, cvr = model.score(embedded.user, embedded.context, embedded.ad.unsqueeze(1), embedded.pair.unsqueeze(1))
    return ctr.squeeze(1), cvr.squeeze(1)


def predict(model: AdModel, featurizer: Featurizer, rows: np.ndarray, batch_size: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Click logits (with the logged position's bias) and conversion logits for impression rows."""
    model.eval()
    ctr_out, cvr_out = [], []
    positions = torch.from_numpy(featurizer.world.impressions.position[rows])
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            ctr, cvr = row_logits(model, embed(model, featurizer.rows(rows[start:start + batch_size])))
            ctr_out.append((ctr + model.position_offset(positions[start:start + batch_size])).numpy())
            cvr_out.append(cvr.numpy())
    return np.concatenate(ctr_out), np.concatenate(cvr_out)


def train(preset: Preset, featurizer: Featurizer, train_rows: np.ndarray, log=print) -> tuple[AdModel, dict]:
    torch.manual_seed(preset.seed)
    rng = np.random.default_rng(preset.seed + 1)
    model = AdModel(model_shape(preset))
    optimizer = torch.optim.Adam(model.parameters(), lr=preset.learning_rate)
    impressions = featurizer.world.impressions
    # Linear decay to a tenth of the rate over all steps: the last epochs refine instead of bouncing.
    expected_rows = impressions.click[train_rows].sum() + preset.negative_keep_rate * len(train_rows)
    total_steps = preset.epochs * int(np.ceil(expected_rows / preset.batch_size))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.1, 1.0 - 0.9 * step / max(1, total_steps)))
    clicks, conversions = impressions.click[train_rows], impressions.conversion[train_rows]
    started = time.time()
    # Featurised once: per-batch featurisation would cost more than the forward pass.
    features = featurizer.rows(train_rows)
    positions = torch.from_numpy(impressions.position[train_rows])
    store = featurizer.store
    ad_categorical, ad_title, ad_numeric = (torch.from_numpy(x) for x in (store.ad_categorical, store.ad_title, store.ad_numeric))
    steps = 0
    for epoch in range(preset.epochs):
        model.train()
        # Fresh negative sample each epoch; kept negatives carry weight 1 / keep rate.
        keep = clicks | (rng.random(len(train_rows)) < preset.negative_keep_rate)
        order = rng.permutation(np.flatnonzero(keep))
        totals = np.zeros(3)
        for start in range(0, len(order), preset.batch_size):
            index = order[start:start + preset.batch_size]
            embedded = embed(model, features.take(index))
            ctr, cvr = row_logits(model, embedded)
            ctr = ctr + model.position_offset(positions[index])
            click = torch.from_numpy(clicks[index].astype(np.float32))
            ctcvr = torch.from_numpy(conversions[index].astype(np.float32))
            weight = torch.where(click > 0, torch.tensor(1.0), torch.tensor(1.0 / preset.negative_keep_rate))
            ctr_loss = F.binary_cross_entropy_with_logits(ctr, click, weight=weight)
            # ESMM: pCTCVR = pCTR x pCVR, in log space for stability.
            log_ctcvr = F.logsigmoid(ctr) + F.logsigmoid(cvr)
            log_not_ctcvr = torch.log1p(-log_ctcvr.exp().clamp(max=1 - 1e-6))
            ctcvr_loss = -(weight * (ctcvr * log_ctcvr + (1 - ctcvr) * log_not_ctcvr)).mean()
            catalog_negatives = None
            if preset.retrieval_catalog_negatives:
                sampled = torch.from_numpy(rng.integers(0, len(store.ad_categorical), preset.retrieval_catalog_negatives))
                catalog_negatives = model.ad_embed(ad_categorical[sampled], ad_title[sampled], ad_numeric[sampled])
            retrieval_loss = in_batch_retrieval_loss(embedded, click > 0, preset.retrieval_temperature, catalog_negatives)
            # CTCVR alone teaches the CVR head little (conversions are ~0.4 % of rows); clicked rows
            # give it a direct signal. ESMM's CTCVR term keeps it anchored on the whole space.
            clicked = click > 0
            cvr_loss = F.binary_cross_entropy_with_logits(cvr[clicked], ctcvr[clicked]) if bool(clicked.any()) else torch.zeros(())
            loss = ctr_loss + ctcvr_loss + preset.cvr_loss_weight * cvr_loss + preset.retrieval_loss_weight * retrieval_loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            totals += [ctr_loss.item(), ctcvr_loss.item(), retrieval_loss.item()]
            steps += 1
        batches = max(1, -(-len(order) // preset.batch_size))
        log(f"epoch {epoch + 1}/{preset.epochs}: {len(order)} rows, ctr loss {totals[0] / batches:.4f}, "
            f"ctcvr loss {totals[1] / batches:.4f}, retrieval loss {totals[2] / batches:.4f}, {time.time() - started:.0f} s")
    model.eval()
    return model, {"seconds": time.time() - started, "steps": steps, "epochs": preset.epochs}


def in_batch_retrieval_loss(embedded: Embedded, positive: Tensor, temperature: float, catalog_negatives: Tensor | None = None) -> Tensor:
    """Sampled softmax over the batch's clicked ads: each clicked request should rank its own ad first.

    In-batch negatives are other requests' clicked ads, so mostly ads of other categories; uniform
    draws from the catalog (`catalog_negatives`, mixed negative sampling) add the ads retrieval must
    also rank below, including unpopular and same-category ones."""
    if int(positive.sum()) < 2:
        return torch.zeros(())
    query = (embedded.user + embedded.context)[positive]
    ads = embedded.ad[positive]
    if catalog_negatives is not None:
        ads = torch.cat([ads, catalog_negatives])
    logits = query @ ads.T / temperature
    return F.cross_entropy(logits, torch.arange(len(query)))
