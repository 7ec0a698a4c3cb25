"""Tests of the served-slate measure (train/slate.py) on the tiny preset (run by `npm test`)."""

from __future__ import annotations

import unittest

import numpy as np
import torch

from train import calibration
from train.features import Featurizer, build_feature_store
from train.fit import predict, train
from train.presets import preset
from train.slate import CPA, CPC, CPM, PIPELINES, ServingSetup, gsp, quality_scores, slate_quality
from train.world import build_world


def auction(bid_type, bid_micros, p_ctr, quality, slots, p_cvr=None, **setup):
    """One request through gsp(), candidates in the given order as ad indexes 0..n-1."""
    row = lambda values, dtype=np.float64: np.asarray([values], dtype=dtype)  # noqa: E731
    n = len(bid_micros)
    return gsp(row(range(n), np.int64), row(bid_type, np.int64), row(bid_micros), row(p_ctr), row(p_cvr or [0.1] * n), row(quality),
               slots, ServingSetup(**setup))


class AuctionMirror(unittest.TestCase):
    """The worked examples of docs/auction.md, which test/auction/ asserts for the daemon."""

    def test_gsp_prices(self):
        winners, prices = auction([CPC, CPC], [2_000_000, 1_800_000], [0.05, 0.04], [1.2, 1.1], 1)
        self.assertEqual((winners.tolist(), prices.tolist()), ([[0]], [[1_330_000]]))
        winners, prices = auction([CPC] * 4, [3_000_000, 2_800_000, 2_500_000, 2_000_000], [0.06, 0.05, 0.04, 0.04], [1.4, 1.3, 1.2, 1.1], 3)
        self.assertEqual((winners.tolist(), prices.tolist()), ([[0, 1, 2]], [[2_176_667, 1_856_154, 1_843_334]]))

    def test_quality_lowers_the_price_and_ranks(self):
        winners, prices = auction([CPC, CPC], [2_500_000, 2_000_000], [0.04, 0.05], [1.0, 1.5], 1)
        self.assertEqual((winners.tolist(), prices.tolist()), ([[1]], [[1_343_334]]))

    def test_reserves(self):
        _, prices = auction([CPC, CPC], [1_000_000, 200_000], [0.03, 0.02], [1.1, 1.0], 1, reserve_micros=(250_000, 500_000, 1_000_000))
        self.assertEqual(prices.tolist(), [[250_000]])
        winners, prices = auction([CPC, CPC], [40_000, 100_000], [0.5, 0.05], [1.0, 1.0], 2)
        self.assertEqual((winners.tolist(), prices.tolist()), ([[1, -1]], [[50_000, 0]]))

    def test_other_bid_types_price_in_their_unit(self):
        _, prices = auction([CPM, CPC], [10_000_000, 800_000], [0.01, 0.01], [1.0, 1.0], 1)
        self.assertEqual(prices.tolist(), [[8_010_000]])
        _, prices = auction([CPA, CPC], [20_000_000, 1_000_000], [0.05, 0.05], [1.0, 1.0], 1, p_cvr=[0.1, 0.1])
        self.assertEqual(prices.tolist(), [[10_010_000]])

    def test_ties_go_to_the_lower_ad_index_whatever_the_column_order(self):
        ad = np.array([[7, 3, 5]])
        winners, _ = gsp(ad, np.full((1, 3), CPM), np.full((1, 3), 5e6), np.full((1, 3), 0.01), np.full((1, 3), 0.1),
                         np.full((1, 3), 1.5), 2, ServingSetup())
        self.assertEqual(winners.tolist(), [[3, 5]])

    def test_quality_score(self):
        bid_type = np.array([[CPC, CPC]])
        qs = quality_scores(bid_type, np.array([[0.05, 0.05]]), np.array([[0.02, 0.08]]), np.array([[0.9, 0.3]]), np.array([[0.5, 0.5]]),
                            ServingSetup())
        np.testing.assert_allclose(qs, [[0.7143, 1.0274]], atol=1e-4)
        qs = quality_scores(bid_type, np.array([[0.05, 0.05]]), np.array([[0.001, 0.099]]), np.array([[0.5, 0.5]]), np.array([[0.5, 0.5]]),
                            ServingSetup())
        np.testing.assert_allclose(qs, [[0.5, 1.4071]], atol=1e-4)


class SlateMeasure(unittest.TestCase):
    """The measure on a tiny world and a model trained for one epoch."""

    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        cls.preset = preset("tiny")
        p = cls.preset
        world = build_world(p)
        store = build_feature_store(world, p)
        cls.featurizer = Featurizer(world, store, p)
        day = world.impressions.day
        train_end = p.history_days + p.train_days
        calibration_rows = np.flatnonzero((day >= train_end) & (day < train_end + p.calibration_days))
        cls.test_rows = np.flatnonzero(day >= train_end + p.calibration_days)[:150]
        cls.model, _ = train(p, cls.featurizer, np.flatnonzero((day >= p.history_days) & (day < train_end)), lambda message: None)
        ctr_logit, cvr_logit = predict(cls.model, cls.featurizer, calibration_rows)
        clicked = world.impressions.click[calibration_rows]
        cls.calibrators = {"ctr": calibration.fit_isotonic(ctr_logit, clicked.astype(np.float64)),
                           "cvr": calibration.fit_temperature(cvr_logit[clicked], world.impressions.conversion[calibration_rows][clicked].astype(np.float64))}
        with torch.no_grad():
            cls.ad_embeddings = cls.model.ad_embed(torch.from_numpy(store.ad_categorical), torch.from_numpy(store.ad_title),
                                                   torch.from_numpy(store.ad_numeric)).numpy()
        # Smaller than the daemon's defaults, so that on 400 ads retrieval and the lightweight cut both drop ads.
        cls.setup = ServingSetup(ann_candidates=100, score_candidates=40)
        cls.result = cls.measure(cls.ad_embeddings, cls.setup, exhaustive_requests=30)

    @classmethod
    def measure(cls, ad_embeddings, setup, exhaustive_requests=0):
        return slate_quality(cls.model, cls.featurizer, cls.test_rows, cls.calibrators, ad_embeddings, exhaustive_requests=exhaustive_requests,
                             setup=setup, chunk=64)

    def each_metric(self, result):
        for slots, by_metric in result["slots"].items():
            for metric, values in by_metric.items():
                yield f"{slots} slots, {metric}", values

    def test_shares_are_at_most_one_and_the_oracle_is_at_least_what_is_served(self):
        self.assertEqual(set(self.result["slots"]), {"1", "4"})
        for label, values in self.each_metric(self.result):
            for name in PIPELINES[1:]:
                self.assertLessEqual(values["share_of_oracle"][name], 1.0, f"{label}: {name}")
                self.assertGreaterEqual(values["per_request"]["oracle"], values["per_request"][name], f"{label}: {name}")
            self.assertGreater(values["share_of_oracle"]["served"], 0.0, label)

    def test_losses_add_up_to_what_the_served_slate_misses(self):
        for label, values in self.each_metric(self.result):
            loss = values["loss"]
            self.assertAlmostEqual(loss["retrieval"] + loss["lightweight_cut"] + loss["ranking"], loss["total"], places=12, msg=label)
            self.assertAlmostEqual(loss["total"], 1.0 - values["share_of_oracle"]["served"], places=12, msg=label)
            self.assertAlmostEqual(loss["retrieval"], 1.0 - values["share_of_oracle"]["truth_on_retrieved"], places=12, msg=label)
            self.assertIsNotNone(values["exhaustive_gain"], label)

    def test_truth_over_the_whole_catalog_is_the_oracle(self):
        everything = len(self.ad_embeddings)
        result = self.measure(self.ad_embeddings, ServingSetup(ann_candidates=everything, score_candidates=everything))
        for label, values in self.each_metric(result):
            self.assertEqual(values["share_of_oracle"]["truth_on_retrieved"], 1.0, label)
            self.assertEqual(values["share_of_oracle"]["truth_on_candidates"], 1.0, label)

    def test_a_broken_retrieval_lowers_the_retrieval_share(self):
        # Negated ad embeddings: retrieval hands on the ads the model finds least similar.
        broken = self.measure(-self.ad_embeddings, self.setup)
        for (label, values), (_, worse) in zip(self.each_metric(self.result), self.each_metric(broken)):
            self.assertLess(worse["share_of_oracle"]["truth_on_retrieved"], values["share_of_oracle"]["truth_on_retrieved"] - 0.05, label)
            self.assertGreater(worse["loss"]["retrieval"], values["loss"]["retrieval"] + 0.05, label)


if __name__ == "__main__":
    unittest.main()
