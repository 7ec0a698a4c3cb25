"""Tests of the training pipeline on the tiny preset (run by `npm test`)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import unittest
from dataclasses import replace
from pathlib import Path

import numpy as np

from train import calibration, text
from train.features import build_feature_store
from train.metrics import auc, ece
from train.presets import preset
from train.world import build_world

ROOT = Path(__file__).resolve().parents[2]


class TextHashing(unittest.TestCase):
    def test_fnv1a_reference_values(self):
        self.assertEqual(text.fnv1a32(b""), 0x811C9DC5)
        self.assertEqual(text.fnv1a32(b"a"), 0xE40C292C)
        self.assertEqual(text.fnv1a32(b"foobar"), 0xBF9CF968)

    def test_tokens_are_ascii_alphanumeric_runs(self):
        self.assertEqual(text.tokens("Running-Shoes 4K!  for MEN"), ["running", "shoes", "4k", "for", "men"])
        self.assertEqual(text.tokens("café"), ["caf"])

    def test_buckets_pad_and_mark_empty_text(self):
        self.assertEqual(text.token_buckets("", 100, 4), [text.EMPTY, 0, 0, 0])
        ids = text.token_buckets("a b c d e", 100, 3)
        self.assertEqual(len(ids), 3)
        self.assertTrue(all(2 <= i < 100 for i in ids))


class Metrics(unittest.TestCase):
    def test_auc_matches_pairwise_definition(self):
        rng = np.random.default_rng(0)
        labels = rng.random(300) < 0.3
        scores = np.round(rng.random(300), 1)  # many ties
        pos, neg = scores[labels], scores[~labels]
        pairwise = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
        self.assertAlmostEqual(auc(labels, scores), pairwise, places=12)

    def test_ece_is_zero_for_perfect_calibration_per_bin(self):
        labels = np.array([0, 1] * 50)
        self.assertAlmostEqual(ece(labels, np.full(100, 0.5), bins=5), 0.0)


class Calibration(unittest.TestCase):
    def setUp(self):
        rng = np.random.default_rng(1)
        self.logits = rng.normal(-3, 1.2, 20_000)
        self.labels = (rng.random(20_000) < calibration.sigmoid(0.7 * self.logits - 0.4)).astype(float)

    def test_isotonic_is_monotone_bounded_and_compact(self):
        params = calibration.fit_isotonic(self.logits, self.labels)
        x, y = np.array(params["x"]), np.array(params["y"])
        self.assertLessEqual(len(x), calibration.MAX_KNOTS)
        self.assertTrue(np.all(np.diff(x) > 0))
        self.assertTrue(np.all(np.diff(y) >= 0))
        grid = np.linspace(-10, 5, 1000)
        self.assertTrue(np.all(np.diff(calibration.apply(params, grid)) >= 0))
        self.assertLess(ece(self.labels, calibration.apply(params, self.logits)), 0.01)

    def test_platt_and_temperature_recover_known_parameters(self):
        platt = calibration.fit_platt(self.logits, self.labels)
        self.assertAlmostEqual(platt["a"], 0.7, delta=0.08)
        self.assertAlmostEqual(platt["b"], -0.4, delta=0.25)
        labels = (np.random.default_rng(2).random(20_000) < calibration.sigmoid(self.logits / 2.0)).astype(float)
        self.assertAlmostEqual(calibration.fit_temperature(self.logits, labels)["t"], 2.0, delta=0.2)


class World(unittest.TestCase):
    def test_same_seed_same_world_other_seed_other_world(self):
        tiny = preset("tiny")
        a, b, c = build_world(tiny), build_world(tiny), build_world(replace(tiny, seed=tiny.seed + 1))
        for name in ["user", "ad", "click", "conversion", "p_click"]:
            np.testing.assert_array_equal(getattr(a.impressions, name), getattr(b.impressions, name))
        self.assertFalse(np.array_equal(a.impressions.click, c.impressions.click))
        self.assertEqual(a.ads.title, b.ads.title)

    def test_rates_are_in_the_documented_ranges(self):
        world = build_world(replace(preset("tiny"), impressions_per_day=20_000))
        ctr = world.impressions.click.mean()
        cvr = world.impressions.conversion.sum() / world.impressions.click.sum()
        self.assertTrue(0.01 <= ctr <= 0.05, ctr)
        self.assertTrue(0.05 <= cvr <= 0.15, cvr)

    def test_conversions_only_follow_clicks(self):
        log = build_world(preset("tiny")).impressions
        self.assertFalse(np.any(log.conversion & ~log.click))


class NoLabelLeakage(unittest.TestCase):
    def store_tables(self, store):
        return [store.user_numeric, store.ad_numeric, store.user_category_clicks, store.user_category_impressions,
                store.user_advertiser_keys, store.user_advertiser_clicks, store.user_advertiser_conversions]

    def test_features_ignore_labels_after_the_history_window(self):
        tiny = preset("tiny")
        world = build_world(tiny)
        before = self.store_tables(build_feature_store(world, tiny))
        later = world.impressions.day >= tiny.history_days
        world.impressions.click[later] = ~world.impressions.click[later]
        world.impressions.conversion[later] = world.impressions.click[later]
        for a, b in zip(before, self.store_tables(build_feature_store(world, tiny))):
            np.testing.assert_array_equal(a, b)

    def test_features_do_depend_on_history_labels(self):
        tiny = preset("tiny")
        world = build_world(tiny)
        before = build_feature_store(world, tiny).ad_numeric
        history = world.impressions.day < tiny.history_days
        world.impressions.click[history] = ~world.impressions.click[history]
        self.assertFalse(np.array_equal(before, build_feature_store(world, tiny).ad_numeric))


class ExportedModel(unittest.TestCase):
    """Runs the whole pipeline twice on the tiny preset."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dirs = [Path(cls.tmp.name) / name for name in ("a", "b")]
        for directory in cls.dirs:
            subprocess.run([sys.executable, "-m", "train", "--preset", "tiny", "--out", str(directory), "--threads", "1"],
                           cwd=ROOT, check=True, capture_output=True)
        cls.manifest = json.loads((cls.dirs[0] / "manifest.json").read_text())

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_manifest_schema(self):
        m = self.manifest
        for key in ["manifest_version", "version", "embedding_dim", "placements", "categories", "features", "methods", "calibration", "metrics", "files"]:
            self.assertIn(key, m)
        self.assertEqual(m["placements"], ["Search", "ProductPage", "Category", "Homepage", "Cart"])
        self.assertEqual(set(m["methods"]), {"user_embed", "context_embed_search", "context_embed_browse", "ad_embed", "score"})
        self.assertEqual(m["calibration"]["ctr"]["kind"], "isotonic")
        self.assertEqual(m["calibration"]["cvr"]["kind"], "temperature")
        self.assertEqual(len(m["features"]["user"]["numeric"]["mean"]), m["methods"]["user_embed"]["inputs"][1][2][1])

    def test_files_match_their_contracts(self):
        sizes = {"float32": 4, "int64": 8, "int32": 4}
        for name, entry in self.manifest["files"].items():
            path = self.dirs[0] / name
            self.assertEqual(hashlib.sha256(path.read_bytes()).hexdigest(), entry["sha256"], name)
            if "shape" in entry:
                self.assertEqual(path.stat().st_size, int(np.prod(entry["shape"])) * sizes[entry["dtype"]], name)
        ids = (self.dirs[0] / "ad_ids.txt").read_text().splitlines()
        self.assertEqual(len(ids), self.manifest["files"]["ad_embeddings.f32"]["shape"][0])
        self.assertEqual(ids, sorted(ids))
        lines = [json.loads(line) for line in (self.dirs[0] / "catalog.jsonl").read_text().splitlines()]
        self.assertEqual([line["id"] for line in lines if line["kind"] == "ad"], ids)
        advertisers = [line["id"] for line in lines if line["kind"] == "advertiser"]
        vocabulary = next(column for column in self.manifest["features"]["ad"]["categorical"] if column["name"] == "advertiser")["vocabulary"]
        self.assertEqual(vocabulary, advertisers)

    def test_torchscript_round_trip_within_tolerance(self):
        self.assertLessEqual(self.manifest["torchscript_parity_max_abs_diff"], 1e-5)

    def test_training_is_deterministic(self):
        for name in ["ad_embeddings.f32", "user_embeddings.f32", "ad_ids.txt", "catalog.jsonl"]:
            self.assertEqual((self.dirs[0] / name).read_bytes(), (self.dirs[1] / name).read_bytes(), name)


if __name__ == "__main__":
    unittest.main()
