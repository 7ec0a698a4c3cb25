"""The DLRM-style scorer (docs/dlrm.md): id embeddings for memorisation, pairwise dot interactions, a top MLP.

It ranks behind the same towers as the multi-tower model: user_embed, context_embed_* and ad_embed
are the multi-tower's (frozen), so retrieval, the user cache and new ads' embeddings stay as they
are; only `score` differs. Its fields, each a vector of `field_dim`:
  dense: E_user, E_ctx and E_ad each projected, the pair features through a bottom MLP;
  ids:   ad, campaign, advertiser, category, and the user's segment bucket (the sign pattern of E_user
         on fixed random hyperplanes, so a user the store does not know still falls in a segment).
Every pair of fields meets in a dot product; the top MLP reads [bottom output, dots] -> (ctr_logit,
cvr_logit). Ids beyond the tables (ads added while serving) share one untrained-on row per table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .model import AdModel, mlp


@dataclass(frozen=True)
class DLRMShape:
    embedding_dim: int
    pair_features: int
    ads: int
    campaigns: int
    advertisers: int
    categories: int
    field_dim: int = 16
    segment_bits: int = 8


def lookup(table: Tensor, ids: Tensor) -> Tensor:
    """Rows of an embedding table for ids; an id outside the trained ones reads the table's last row."""
    unknown = table.shape[0] - 1
    return F.embedding(torch.where((ids >= 0) & (ids < unknown), ids, torch.full_like(ids, unknown)), table)


class DLRM(nn.Module):
    def __init__(self, towers: AdModel, shape: DLRMShape, seed: int):
        super().__init__()
        self.towers = towers
        for parameter in towers.parameters():
            parameter.requires_grad_(False)
        k, d = shape.field_dim, shape.embedding_dim
        # One extra row each: ids the training data never saw.
        self.ad = nn.Embedding(shape.ads + 1, k)
        self.campaign = nn.Embedding(shape.campaigns + 1, k)
        self.advertiser = nn.Embedding(shape.advertisers + 1, k)
        self.category = nn.Embedding(shape.categories + 1, k)
        self.user_segment = nn.Embedding(2 ** shape.segment_bits + 1, k)
        planes = torch.randn(d, shape.segment_bits, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("segment_planes", planes)
        self.register_buffer("segment_weights", 2 ** torch.arange(shape.segment_bits))
        self.user_field = nn.Linear(d, k)
        self.context_field = nn.Linear(d, k)
        self.ad_field = nn.Linear(d, k)
        self.bottom = mlp([shape.pair_features, 64, k])
        fields = 9
        upper = torch.triu_indices(fields, fields, offset=1)
        # Positions of the pairs i < j in the flattened [fields x fields] dot matrix.
        self.register_buffer("pair_index", upper[0] * fields + upper[1])
        self.top = mlp([k + fields * (fields - 1) // 2, 256, 128, 64])
        self.ctr_head = nn.Linear(64, 1)
        self.cvr_head = nn.Linear(64, 1)
        self.position_bias = nn.Parameter(torch.zeros(4))

    @torch.jit.export
    def user_embed(self, categorical: Tensor, numeric: Tensor) -> Tensor:
        return self.towers.user_embed(categorical, numeric)

    @torch.jit.export
    def context_embed_search(self, tokens: Tensor, categorical: Tensor, numeric: Tensor) -> Tensor:
        return self.towers.context_embed_search(tokens, categorical, numeric)

    @torch.jit.export
    def context_embed_browse(self, category: Tensor, product: Tensor, categorical: Tensor, numeric: Tensor) -> Tensor:
        return self.towers.context_embed_browse(category, product, categorical, numeric)

    @torch.jit.export
    def ad_embed(self, categorical: Tensor, title: Tensor, numeric: Tensor) -> Tensor:
        return self.towers.ad_embed(categorical, title, numeric)

    @torch.jit.export
    def user_segments(self, user: Tensor) -> Tensor:
        """[B,D] -> [B] int64 segment bucket."""
        return ((user @ self.segment_planes) > 0).to(torch.int64).mul(self.segment_weights).sum(dim=1)

    @torch.jit.export
    def score(self, user: Tensor, context: Tensor, ads: Tensor, pair: Tensor, ad_ids: Tensor) -> Tuple[Tensor, Tensor]:
        """[B,D], [B,D], [B,N,D], [B,N,P] float32, [B,N,4] int64 -> (ctr_logit [B,N], cvr_logit [B,N])."""
        n = ads.shape[1]
        per_request = torch.stack([self.user_field(user), self.context_field(context), lookup(self.user_segment.weight, self.user_segments(user))], dim=1)
        dense = self.bottom(pair)
        fields = torch.cat([
            per_request.unsqueeze(1).expand(-1, n, -1, -1),
            torch.stack([self.ad_field(ads), dense, lookup(self.ad.weight, ad_ids[:, :, 0]), lookup(self.campaign.weight, ad_ids[:, :, 1]),
                         lookup(self.advertiser.weight, ad_ids[:, :, 2]), lookup(self.category.weight, ad_ids[:, :, 3])], dim=2),
        ], dim=2)
        dots = torch.matmul(fields, fields.transpose(2, 3)).flatten(2).index_select(2, self.pair_index)
        hidden = F.relu(self.top(torch.cat([dense, dots], dim=2)))
        return self.ctr_head(hidden).squeeze(2), self.cvr_head(hidden).squeeze(2)

    def forward(self, user: Tensor, context: Tensor, ads: Tensor, pair: Tensor, ad_ids: Tensor) -> Tuple[Tensor, Tensor]:
        return self.score(user, context, ads, pair, ad_ids)

    def position_offset(self, position: Tensor) -> Tensor:
        return self.position_bias[position] - self.position_bias[0]


def focal_loss(logit: Tensor, target: Tensor, weight: Tensor, gamma: float) -> Tensor:
    """Weighted binary focal loss, mean over rows: BCE scaled by (1 - p_t)^gamma; gamma 0 is BCE."""
    bce = F.binary_cross_entropy_with_logits(logit, target, reduction="none")
    p_true = torch.exp(-bce)
    return (weight * (1 - p_true).pow(gamma) * bce).mean()
