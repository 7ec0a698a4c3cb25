"""`npm run train -- --preset demo [--out models/demo] [--seed N]`: world -> features -> model -> calibration -> export."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from . import calibration
from .evaluate import evaluate
from .export import export
from .features import Featurizer, build_feature_store
from .fit import predict, train
from .presets import preset as load_preset
from .report import markdown
from .world import build_world


def main() -> None:
    parser = argparse.ArgumentParser(prog="npm run train --", description=__doc__)
    parser.add_argument("--preset", default="demo", help="tiny | demo | large")
    parser.add_argument("--out", help="model directory (default models/<preset>)")
    parser.add_argument("--seed", type=int, help="override the preset's seed")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch intra-op threads")
    parser.add_argument("--ctr-calibration", default="isotonic", choices=sorted(calibration.FITTERS))
    parser.add_argument("--cvr-calibration", default="temperature", choices=sorted(calibration.FITTERS))
    args = parser.parse_args()

    started = time.time()
    torch.set_num_threads(args.threads)
    overrides = {"seed": args.seed} if args.seed is not None else {}
    preset = load_preset(args.preset, **overrides)
    out = Path(args.out or f"models/{preset.name}")
    log = lambda message: print(f"train[{preset.name}] {time.time() - started:6.1f}s {message}", flush=True)  # noqa: E731

    world = build_world(preset)
    impressions = world.impressions
    log(f"world: {preset.users} users, {len(world.ads)} ads, {len(impressions)} impressions, CTR {impressions.click.mean():.4f}, "
        f"CVR|click {impressions.conversion[impressions.click].mean():.4f}")
    store = build_feature_store(world, preset)
    featurizer = Featurizer(world, store, preset)
    day = impressions.day
    train_end = preset.history_days + preset.train_days
    calibration_end = train_end + preset.calibration_days
    train_rows = np.flatnonzero((day >= preset.history_days) & (day < train_end))
    calibration_rows = np.flatnonzero((day >= train_end) & (day < calibration_end))
    test_rows = np.flatnonzero(day >= calibration_end)

    model, training = train(preset, featurizer, train_rows, log)
    ctr_logit, cvr_logit = predict(model, featurizer, calibration_rows)
    clicked = impressions.click[calibration_rows]
    calibrators = {
        "ctr": calibration.FITTERS[args.ctr_calibration](ctr_logit, clicked.astype(np.float64)),
        "cvr": calibration.FITTERS[args.cvr_calibration](cvr_logit[clicked], impressions.conversion[calibration_rows][clicked].astype(np.float64)),
    }
    with torch.no_grad():
        ad_embeddings = model.ad_embed(torch.from_numpy(store.ad_categorical), torch.from_numpy(store.ad_title), torch.from_numpy(store.ad_numeric)).numpy()
    report = evaluate(model, featurizer, test_rows, calibrators, ad_embeddings, preset.recall_requests, preset.seed)
    gap = report["ctr"]["ground_truth"]["auc"] - report["ctr"]["model_calibrated"]["auc"]
    report.update({
        "preset": preset.name,
        "data": {"impressions": len(impressions), "ctr": float(impressions.click.mean()),
                 "cvr_given_click": float(impressions.conversion[impressions.click].mean()), "train_rows": len(train_rows),
                 "calibration_rows": len(calibration_rows), "test_rows": len(test_rows)},
        "training": training,
        "targets": {"ctr_auc_gap": gap, "ctr_auc_gap_met": gap <= 0.02, "ctr_ece_met": report["ctr_ece"]["after"] <= 0.01},
    })
    log(f"test: CTR AUC {report['ctr']['model_calibrated']['auc']:.4f} (truth {report['ctr']['ground_truth']['auc']:.4f}), "
        f"ECE {report['ctr_ece']['before']:.4f} -> {report['ctr_ece']['after']:.4f}, recall {report['retrieval']}")
    report["pipeline_seconds"] = time.time() - started
    manifest = export(out, model, world, store, featurizer, preset, calibrators, report, log)
    report["pipeline_seconds"] = time.time() - started
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(markdown(report))
    log(f"wrote {out} (model {manifest['version']})")


if __name__ == "__main__":
    main()
