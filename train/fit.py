"""Training: ESMM losses plus the in-batch retrieval loss, on negative-downsampled rows; the DLRM scorer
on the multi-tower's frozen towers."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .dlrm import DLRM, DLRMShape, focal_loss
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
    ad_ids: Tensor

    def take(self, index: Tensor) -> "Embedded":
        return Embedded(**{name: value[index] for name, value in vars(self).items()})


@dataclass(frozen=True)
class ClickLoss:
    """The click term's loss: "bce", or "focal" with its gamma (gamma 0 is BCE)."""

    name: str = "bce"
    gamma: float = 2.0

    def __call__(self, logit: Tensor, click: Tensor, weight: Tensor) -> Tensor:
        if self.name == "focal":
            return focal_loss(logit, click, weight, self.gamma)
        return F.binary_cross_entropy_with_logits(logit, click, weight=weight)

    def describe(self) -> dict:
        return {"name": self.name, **({"gamma": self.gamma} if self.name == "focal" else {})}


def score(model: AdModel | DLRM, user: Tensor, context: Tensor, ads: Tensor, pair: Tensor, ad_ids: Tensor) -> tuple[Tensor, Tensor]:
    """Either scorer's `score`; only the DLRM reads the ads' ids."""
    if isinstance(model, DLRM):
        return model.score(user, context, ads, pair, ad_ids)
    return model.score(user, context, ads, pair)


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
    return Embedded(user=user, context=context, ad=ad, pair=t(batch.pair), ad_ids=t(batch.ad_ids))


def row_logits(model: AdModel | DLRM, embedded: Embedded) -> tuple[Tensor, Tensor]:
    """Per-row (ctr_logit, cvr_logit) without the position term."""
    ctr, cvr = score(model, embedded.user, embedded.context, embedded.ad.unsqueeze(1), embedded.pair.unsqueeze(1), embedded.ad_ids.unsqueeze(1))
    return ctr.squeeze(1), cvr.squeeze(1)


def predict(model: AdModel | DLRM, featurizer: Featurizer, rows: np.ndarray, batch_size: int = 8192) -> tuple[np.ndarray, np.ndarray]:
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


def esmm_losses(ctr: Tensor, cvr: Tensor, click: Tensor, ctcvr: Tensor, preset: Preset, click_loss: ClickLoss) -> tuple[Tensor, Tensor, Tensor]:
    """(click, CTCVR, CVR-on-clicks) losses; kept negatives carry weight 1 / keep rate."""
    weight = torch.where(click > 0, torch.tensor(1.0), torch.tensor(1.0 / preset.negative_keep_rate))
    ctr_loss = click_loss(ctr, click, weight)
    # ESMM: pCTCVR = pCTR x pCVR, in log space for stability.
    log_ctcvr = F.logsigmoid(ctr) + F.logsigmoid(cvr)
    log_not_ctcvr = torch.log1p(-log_ctcvr.exp().clamp(max=1 - 1e-6))
    ctcvr_loss = -(weight * (ctcvr * log_ctcvr + (1 - ctcvr) * log_not_ctcvr)).mean()
    # CTCVR alone teaches the CVR head little (conversions are ~0.4 % of rows); clicked rows
    # give it a direct signal. ESMM's CTCVR term keeps it anchored on the whole space.
    clicked = click > 0
    cvr_loss = F.binary_cross_entropy_with_logits(cvr[clicked], ctcvr[clicked]) if bool(clicked.any()) else torch.zeros(())
    return ctr_loss, ctcvr_loss, cvr_loss


def linear_decay(optimizer: torch.optim.Optimizer, preset: Preset, clicks: np.ndarray) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear decay to a tenth of the rate over all steps: the last epochs refine instead of bouncing."""
    expected_rows = clicks.sum() + preset.negative_keep_rate * len(clicks)
    total_steps = preset.epochs * int(np.ceil(expected_rows / preset.batch_size))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.1, 1.0 - 0.9 * step / max(1, total_steps)))


def train(preset: Preset, featurizer: Featurizer, train_rows: np.ndarray, log=print, click_loss: ClickLoss = ClickLoss()) -> tuple[AdModel, dict]:
    torch.manual_seed(preset.seed)
    rng = np.random.default_rng(preset.seed + 1)
    model = AdModel(model_shape(preset))
    optimizer = torch.optim.Adam(model.parameters(), lr=preset.learning_rate)
    impressions = featurizer.world.impressions
    clicks, conversions = impressions.click[train_rows], impressions.conversion[train_rows]
    schedule = linear_decay(optimizer, preset, clicks)
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
            ctr_loss, ctcvr_loss, cvr_loss = esmm_losses(ctr, cvr, click, ctcvr, preset, click_loss)
            catalog_negatives = None
            if preset.retrieval_catalog_negatives:
                sampled = torch.from_numpy(rng.integers(0, len(store.ad_categorical), preset.retrieval_catalog_negatives))
                catalog_negatives = model.ad_embed(ad_categorical[sampled], ad_title[sampled], ad_numeric[sampled])
            retrieval_loss = in_batch_retrieval_loss(embedded, click > 0, preset.retrieval_temperature, catalog_negatives)
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
    return model, {"seconds": time.time() - started, "steps": steps, "epochs": preset.epochs, "click_loss": click_loss.describe()}


def dlrm_shape(preset: Preset, featurizer: Featurizer) -> DLRMShape:
    ads = featurizer.world.ads
    return DLRMShape(embedding_dim=preset.embedding_dim, pair_features=len(PAIR_FEATURES), ads=len(ads.category),
                     campaigns=len(ads.campaign_advertiser), advertisers=preset.advertisers, categories=len(CATEGORIES))


def train_dlrm(preset: Preset, featurizer: Featurizer, train_rows: np.ndarray, towers: AdModel, log=print,
               click_loss: ClickLoss = ClickLoss()) -> tuple[DLRM, dict]:
    """The DLRM's score on the towers' frozen embeddings, with the multi-tower's ESMM losses (no retrieval term)."""
    torch.manual_seed(preset.seed + 5)
    rng = np.random.default_rng(preset.seed + 6)
    towers.eval()
    model = DLRM(towers, dlrm_shape(preset, featurizer), preset.seed + 8)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=preset.learning_rate)
    impressions = featurizer.world.impressions
    clicks, conversions = impressions.click[train_rows], impressions.conversion[train_rows]
    schedule = linear_decay(optimizer, preset, clicks)
    started = time.time()
    # The towers are frozen, so every row's embeddings are computed once, not once an epoch.
    with torch.no_grad():
        chunks = [embed(towers, featurizer.rows(train_rows[start:start + 8192])) for start in range(0, len(train_rows), 8192)]
    embedded = Embedded(**{name: torch.cat([getattr(chunk, name) for chunk in chunks]) for name in vars(chunks[0])})
    log(f"dlrm: embedded {len(train_rows)} rows with the frozen towers, {time.time() - started:.0f} s")
    positions = torch.from_numpy(impressions.position[train_rows])
    steps = 0
    for epoch in range(preset.epochs):
        model.train()
        keep = clicks | (rng.random(len(train_rows)) < preset.negative_keep_rate)
        order = rng.permutation(np.flatnonzero(keep))
        totals = np.zeros(2)
        for start in range(0, len(order), preset.batch_size):
            index = torch.from_numpy(order[start:start + preset.batch_size])
            ctr, cvr = row_logits(model, embedded.take(index))
            ctr = ctr + model.position_offset(positions[index])
            click = torch.from_numpy(clicks[index.numpy()].astype(np.float32))
            ctcvr = torch.from_numpy(conversions[index.numpy()].astype(np.float32))
            ctr_loss, ctcvr_loss, cvr_loss = esmm_losses(ctr, cvr, click, ctcvr, preset, click_loss)
            loss = ctr_loss + ctcvr_loss + preset.cvr_loss_weight * cvr_loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            totals += [ctr_loss.item(), ctcvr_loss.item()]
            steps += 1
        batches = max(1, -(-len(order) // preset.batch_size))
        log(f"dlrm epoch {epoch + 1}/{preset.epochs}: {len(order)} rows, ctr loss {totals[0] / batches:.4f}, "
            f"ctcvr loss {totals[1] / batches:.4f}, {time.time() - started:.0f} s")
    model.eval()
    return model, {"seconds": time.time() - started, "steps": steps, "epochs": preset.epochs, "click_loss": click_loss.describe()}


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
