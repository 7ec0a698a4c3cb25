"""The multi-tower ESMM model (docs/architecture.md, "The model"), written to be scripted by TorchScript.

user tower (static, cached per user) -> E_user; context tower (search: hashed tokens + positions ->
2-layer Transformer encoder -> masked mean; browse: page category + product + time) -> E_ctx;
ad tower -> E_ad; all L2-normalised, so retrieval is an inner product (E_user + E_ctx) . E_ad.
Fusion pattern B: [E_user, E_ctx, E_ad, user.ad, user.ctx, ctx.ad, pair features] -> MLP 256-128-64
-> (ctr_logit, cvr_logit); pCTCVR = pCTR x pCVR (ESMM), with an auxiliary CVR loss on clicked rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class ModelShape:
    embedding_dim: int
    countries: int
    languages: int
    categories: int
    advertisers: int
    user_numeric: int
    ad_numeric: int
    context_numeric: int
    pair_features: int
    query_buckets: int
    product_buckets: int
    title_buckets: int
    max_query_tokens: int


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[index], sizes[index + 1]))
        if index < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class UserTower(nn.Module):
    def __init__(self, shape: ModelShape):
        super().__init__()
        self.age = nn.Embedding(8, 8)
        self.gender = nn.Embedding(4, 4)
        self.country = nn.Embedding(shape.countries + 1, 8)
        self.language = nn.Embedding(shape.languages + 1, 4)
        self.mlp = mlp([24 + shape.user_numeric, 256, shape.embedding_dim])

    def forward(self, categorical: Tensor, numeric: Tensor) -> Tensor:
        x = torch.cat([self.age(categorical[:, 0]), self.gender(categorical[:, 1]), self.country(categorical[:, 2]),
                       self.language(categorical[:, 3]), numeric], dim=1)
        return F.normalize(self.mlp(x), dim=1)


class ContextCommon(nn.Module):
    """Placement, hour, weekday, device and page depth: shared by both context branches."""

    def __init__(self):
        super().__init__()
        self.placement = nn.Embedding(6, 8)
        self.hour = nn.Embedding(25, 8)
        self.weekday = nn.Embedding(8, 4)
        self.device = nn.Embedding(5, 4)
        self.width = 24

    def forward(self, categorical: Tensor, numeric: Tensor) -> Tensor:
        return torch.cat([self.placement(categorical[:, 0]), self.hour(categorical[:, 1]), self.weekday(categorical[:, 2]),
                          self.device(categorical[:, 3]), numeric], dim=1)


class SearchContextTower(nn.Module):
    def __init__(self, shape: ModelShape, width: int = 64):
        super().__init__()
        self.tokens = nn.Embedding(shape.query_buckets, width, padding_idx=0)
        self.positions = nn.Embedding(shape.max_query_tokens, width)
        layer = nn.TransformerEncoderLayer(d_model=width, nhead=4, dim_feedforward=2 * width, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.common = ContextCommon()
        self.mlp = mlp([width + self.common.width + shape.context_numeric, 256, shape.embedding_dim])

    def forward(self, tokens: Tensor, categorical: Tensor, numeric: Tensor) -> Tensor:
        padding = tokens == 0
        positions = torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0)
        encoded = self.encoder(self.tokens(tokens) + self.positions(positions), src_key_padding_mask=padding)
        keep = (~padding).unsqueeze(2).to(encoded.dtype)
        pooled = (encoded * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)
        x = torch.cat([pooled, self.common(categorical, numeric)], dim=1)
        return F.normalize(self.mlp(x), dim=1)


class BrowseContextTower(nn.Module):
    def __init__(self, shape: ModelShape):
        super().__init__()
        self.category = nn.Embedding(shape.categories + 1, 32)
        self.product = nn.Embedding(shape.product_buckets, 32, padding_idx=0)
        self.common = ContextCommon()
        self.mlp = mlp([64 + self.common.width + shape.context_numeric, 256, shape.embedding_dim])

    def forward(self, category: Tensor, product: Tensor, categorical: Tensor, numeric: Tensor) -> Tensor:
        x = torch.cat([self.category(category), self.product(product), self.common(categorical, numeric)], dim=1)
        return F.normalize(self.mlp(x), dim=1)


class AdTower(nn.Module):
    def __init__(self, shape: ModelShape):
        super().__init__()
        self.advertiser = nn.Embedding(shape.advertisers + 1, 16)
        self.category = nn.Embedding(shape.categories + 1, 16)
        self.format = nn.Embedding(5, 4)
        self.bid_type = nn.Embedding(4, 4)
        self.title = nn.Embedding(shape.title_buckets, 32, padding_idx=0)
        self.mlp = mlp([72 + shape.ad_numeric, 256, shape.embedding_dim])

    def forward(self, categorical: Tensor, title: Tensor, numeric: Tensor) -> Tensor:
        keep = (title != 0).unsqueeze(2).to(numeric.dtype)
        title_mean = (self.title(title) * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)
        x = torch.cat([self.advertiser(categorical[:, 0]), self.category(categorical[:, 1]), self.format(categorical[:, 2]),
                       self.bid_type(categorical[:, 3]), title_mean, numeric], dim=1)
        return F.normalize(self.mlp(x), dim=1)


class AdModel(nn.Module):
    def __init__(self, shape: ModelShape):
        super().__init__()
        d = shape.embedding_dim
        self.user_tower = UserTower(shape)
        self.search_tower = SearchContextTower(shape)
        self.browse_tower = BrowseContextTower(shape)
        self.ad_tower = AdTower(shape)
        self.fusion = mlp([3 * d + 3 + shape.pair_features, 256, 128, 64])
        self.ctr_head = nn.Linear(64, 1)
        self.cvr_head = nn.Linear(64, 1)
        # Training-only position bias on the click logit, relative to the top slot; serving scores
        # every candidate as if in the top slot.
        self.position_bias = nn.Parameter(torch.zeros(4))

    @torch.jit.export
    def user_embed(self, categorical: Tensor, numeric: Tensor) -> Tensor:
        """[B,4] int64 (age bucket, gender, country, language), [B,Nu] float32 -> [B,D]."""
        return self.user_tower(categorical, numeric)

    @torch.jit.export
    def context_embed_search(self, tokens: Tensor, categorical: Tensor, numeric: Tensor) -> Tensor:
        """[B,Tq] int64 token buckets, [B,4] int64 (placement, hour, weekday, device), [B,1] float32 -> [B,D]."""
        return self.search_tower(tokens, categorical, numeric)

    @torch.jit.export
    def context_embed_browse(self, category: Tensor, product: Tensor, categorical: Tensor, numeric: Tensor) -> Tensor:
        """[B] int64 page category, [B] int64 product bucket, [B,4] int64, [B,1] float32 -> [B,D]."""
        return self.browse_tower(category, product, categorical, numeric)

    @torch.jit.export
    def ad_embed(self, categorical: Tensor, title: Tensor, numeric: Tensor) -> Tensor:
        """[N,4] int64 (advertiser, category, format, bid type), [N,Tt] int64, [N,Na] float32 -> [N,D]."""
        return self.ad_tower(categorical, title, numeric)

    @torch.jit.export
    def score(self, user: Tensor, context: Tensor, ads: Tensor, pair: Tensor) -> Tuple[Tensor, Tensor]:
        """[B,D], [B,D], [B,N,D], [B,N,P] float32 -> (ctr_logit [B,N], cvr_logit [B,N])."""
        n = ads.shape[1]
        u = user.unsqueeze(1).expand(-1, n, -1)
        c = context.unsqueeze(1).expand(-1, n, -1)
        dots = torch.stack([(u * ads).sum(dim=2), (u * c).sum(dim=2), (c * ads).sum(dim=2)], dim=2)
        hidden = F.relu(self.fusion(torch.cat([u, c, ads, dots, pair], dim=2)))
        return self.ctr_head(hidden).squeeze(2), self.cvr_head(hidden).squeeze(2)

    def forward(self, user: Tensor, context: Tensor, ads: Tensor, pair: Tensor) -> Tuple[Tensor, Tensor]:
        return self.score(user, context, ads, pair)

    def position_offset(self, position: Tensor) -> Tensor:
        return self.position_bias[position] - self.position_bias[0]
