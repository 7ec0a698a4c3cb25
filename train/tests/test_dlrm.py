"""Tests of the DLRM scorer (train/dlrm.py), on small random inputs: no world is built."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import torch
import torch.nn.functional as F

from train.dlrm import DLRM, DLRMShape, focal_loss
from train.model import AdModel, ModelShape

ROOT = Path(__file__).resolve().parents[2]
D, P = 16, 5
SHAPE = DLRMShape(embedding_dim=D, pair_features=P, ads=30, campaigns=12, advertisers=6, categories=4, field_dim=8, segment_bits=4)


def towers() -> AdModel:
    return AdModel(ModelShape(embedding_dim=D, countries=3, languages=3, categories=4, advertisers=6, user_numeric=4, ad_numeric=3,
                              context_numeric=1, pair_features=P, query_buckets=64, product_buckets=64, title_buckets=64, max_query_tokens=4))


def inputs(batch: int, candidates: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.stack([torch.randint(0, bound, (batch, candidates), generator=generator)
                       for bound in (SHAPE.ads, SHAPE.campaigns, SHAPE.advertisers, SHAPE.categories)], dim=2)
    return (F.normalize(torch.randn(batch, D, generator=generator), dim=1), F.normalize(torch.randn(batch, D, generator=generator), dim=1),
            F.normalize(torch.randn(batch, candidates, D, generator=generator), dim=2), torch.randn(batch, candidates, P, generator=generator), ids)


class DLRMScorer(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(3)
        self.model = DLRM(towers(), SHAPE, seed=5).eval()

    def test_score_gives_a_logit_pair_per_candidate(self):
        with torch.no_grad():
            ctr, cvr = self.model.score(*inputs(3, 7))
        self.assertEqual(tuple(ctr.shape), (3, 7))
        self.assertEqual(tuple(cvr.shape), (3, 7))
        self.assertTrue(bool(torch.isfinite(ctr).all() and torch.isfinite(cvr).all()))

    def test_every_pair_of_the_nine_fields_meets_once(self):
        fields = 9
        pairs = {(int(i) // fields, int(i) % fields) for i in self.model.pair_index}
        self.assertEqual(len(self.model.pair_index), fields * (fields - 1) // 2)
        self.assertEqual(pairs, {(i, j) for i in range(fields) for j in range(i + 1, fields)})
        self.assertEqual(self.model.top[0].in_features, SHAPE.field_dim + 36)

    def test_a_candidate_scores_the_same_alone_and_beside_others(self):
        user, context, ads, pair, ids = inputs(2, 6)
        with torch.no_grad():
            together = self.model.score(user, context, ads, pair, ids)[0]
            alone = self.model.score(user, context, ads[:, 2:3], pair[:, 2:3], ids[:, 2:3])[0]
        torch.testing.assert_close(alone[:, 0], together[:, 2])

    def test_ids_outside_the_tables_read_the_unknown_row(self):
        user, context, ads, pair, ids = inputs(1, 3)
        beyond, negative = ids.clone(), ids.clone()
        beyond[:, :, 0] = SHAPE.ads + 1000
        negative[:, :, 0] = -1
        with torch.no_grad():
            unknown = self.model.ad.weight[SHAPE.ads].clone()
            self.model.ad.weight[SHAPE.ads] += 1.0
            moved_beyond = self.model.score(user, context, ads, pair, beyond)[0]
            moved_negative = self.model.score(user, context, ads, pair, negative)[0]
            self.model.ad.weight[SHAPE.ads] = unknown
            before = self.model.score(user, context, ads, pair, beyond)[0]
        torch.testing.assert_close(moved_beyond, moved_negative)
        self.assertTrue(bool((moved_beyond != before).all()))

    def test_towers_are_frozen_and_the_scorer_trains(self):
        self.assertFalse(any(p.requires_grad for p in self.model.towers.parameters()))
        self.assertTrue(self.model.ad.weight.requires_grad and self.model.top[0].weight.requires_grad)

    def test_torchscript_round_trip(self):
        scripted = torch.jit.script(self.model)
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "model.pt"
            scripted.save(str(path))
            loaded = torch.jit.load(str(path))
        arguments = inputs(4, 5, seed=9)
        with torch.no_grad():
            for eager, reloaded in zip(self.model.score(*arguments), loaded.score(*arguments)):
                torch.testing.assert_close(reloaded, eager, rtol=0, atol=1e-6)
            categorical, numeric = torch.zeros(2, 4, dtype=torch.int64), torch.randn(2, 4)
            torch.testing.assert_close(loaded.user_embed(categorical, numeric), self.model.towers.user_embed(categorical, numeric))
        # The engine tells the scorers apart by score's arity: self plus five inputs.
        self.assertEqual(len(loaded.score.schema.arguments), 6)


class ExportedDLRM(unittest.TestCase):
    """The tiny pipeline with --scorer dlrm on the towers of a tiny multi-tower run."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.towers, cls.dlrm = Path(cls.tmp.name) / "towers", Path(cls.tmp.name) / "dlrm"
        train = [sys.executable, "-m", "train", "--preset", "tiny", "--threads", "1"]
        subprocess.run([*train, "--out", str(cls.towers)], cwd=ROOT, check=True, capture_output=True)
        subprocess.run([*train, "--out", str(cls.dlrm), "--scorer", "dlrm", "--towers", str(cls.towers), "--loss", "focal", "--focal-gamma", "1.5"],
                       cwd=ROOT, check=True, capture_output=True)
        cls.manifest = json.loads((cls.dlrm / "manifest.json").read_text())
        cls.report = json.loads((cls.dlrm / "report.json").read_text())

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_manifest_names_the_scorer_and_its_id_input(self):
        self.assertEqual(self.manifest["scorer"], "dlrm")
        self.assertEqual(self.manifest["methods"]["score"]["inputs"][4], ["ad_ids", "int64", ["B", "N", 4], ["ad", "campaign", "advertiser", "category"]])
        self.assertEqual(json.loads((self.towers / "manifest.json").read_text())["scorer"], "multitower")
        self.assertLessEqual(self.manifest["torchscript_parity_max_abs_diff"], 1e-5)

    def test_retrieval_parts_are_the_towers(self):
        for name in ["ad_embeddings.f32", "user_embeddings.f32", "catalog.jsonl"]:
            self.assertEqual((self.dlrm / name).read_bytes(), (self.towers / name).read_bytes(), name)

    def test_report_compares_both_scorers_on_the_same_rows(self):
        towers_report = json.loads((self.towers / "report.json").read_text())
        self.assertEqual(self.report["comparison"]["multitower"]["ctr"]["model_calibrated"], towers_report["ctr"]["model_calibrated"])
        self.assertEqual(self.report["comparison"]["multitower"]["ctr"]["ground_truth"], self.report["ctr"]["ground_truth"])
        self.assertEqual(self.report["training"]["click_loss"], {"name": "focal", "gamma": 1.5})
        markdown = (self.dlrm / "report.md").read_text()
        self.assertIn("DLRM click loss focal, gamma 1.5", markdown)
        self.assertRegex(markdown, r"\| multi-tower \| 0\.\d{4} .*\n\| DLRM \| 0\.\d{4} .*\n\| ground truth \| 0\.\d{4}")

    def test_towers_of_another_world_are_refused(self):
        result = subprocess.run([sys.executable, "-m", "train", "--preset", "tiny", "--seed", "7", "--scorer", "dlrm", "--towers", str(self.towers),
                                 "--out", str(Path(self.tmp.name) / "other")], cwd=ROOT, capture_output=True, text=True)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("is not a multi-tower model of preset tiny seed 7", result.stderr)


class FocalLoss(unittest.TestCase):
    def setUp(self):
        generator = torch.Generator().manual_seed(1)
        self.logit = torch.randn(200, generator=generator) * 3
        self.target = (torch.rand(200, generator=generator) < 0.3).float()
        self.weight = torch.where(self.target > 0, torch.tensor(1.0), torch.tensor(4.0))

    def test_gamma_zero_is_weighted_bce(self):
        bce = F.binary_cross_entropy_with_logits(self.logit, self.target, weight=self.weight)
        torch.testing.assert_close(focal_loss(self.logit, self.target, self.weight, 0.0), bce)

    def test_gamma_down_weights_easy_rows(self):
        bce = F.binary_cross_entropy_with_logits(self.logit, self.target, weight=self.weight)
        focal = focal_loss(self.logit, self.target, self.weight, 2.0)
        self.assertLess(float(focal), float(bce))
        confident = torch.tensor([6.0, -6.0])
        labels = torch.tensor([1.0, 0.0])
        ones = torch.ones(2)
        # An easy row (p_t ~ 0.998) keeps almost nothing of its BCE at gamma 2.
        self.assertLess(float(focal_loss(confident, labels, ones, 2.0)), 1e-4 * float(F.binary_cross_entropy_with_logits(confident, labels)))


if __name__ == "__main__":
    unittest.main()
