"""`npm run train -- --preset demo [--out models/demo] [--seed N] [--scorer dlrm [--towers DIR]] [--loss focal]`:
world -> features -> model -> calibration -> export."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from . import calibration
from .dlrm import DLRM
from .evaluate import evaluate, ranking_report
from .export import export
from .features import FeatureStore, Featurizer, build_feature_store
from .fit import ClickLoss, model_shape, predict, train, train_dlrm
from .model import AdModel
from .presets import Preset
from .presets import preset as load_preset
from .report import markdown
from .world import build_world


def main() -> None:
    parser = argparse.ArgumentParser(prog="npm run train --", description=__doc__)
    parser.add_argument("--preset", default="demo", help="tiny | demo | medium | large | huge")
    parser.add_argument("--out", help="model directory (default models/<preset>)")
    parser.add_argument("--seed", type=int, help="override the preset's seed")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch intra-op threads")
    parser.add_argument("--ctr-calibration", default="isotonic", choices=sorted(calibration.FITTERS))
    parser.add_argument("--cvr-calibration", default="temperature", choices=sorted(calibration.FITTERS))
    parser.add_argument("--scorer", default="multitower", choices=["multitower", "dlrm"],
                        help="dlrm: the DLRM scorer on the multi-tower's towers, compared with it on the same test rows")
    parser.add_argument("--towers", help="dlrm: take the towers from this multi-tower model directory (same preset and seed) "
                                         "instead of training them in this run")
    parser.add_argument("--loss", default="bce", choices=["bce", "focal"], help="click loss of the scorer trained")
    parser.add_argument("--focal-gamma", type=float, default=2.0, help="focal loss: (1 - p_t)^gamma; 0 is BCE")
    args = parser.parse_args()
    if args.towers and args.scorer != "dlrm":
        parser.error("--towers only applies to --scorer dlrm")

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

    click_loss = ClickLoss(args.loss, args.focal_gamma)
    if args.scorer == "dlrm":
        if args.towers:
            towers, towers_training = load_towers(Path(args.towers), preset, store), {"from": args.towers}
            log(f"towers: {args.towers}")
        else:
            towers, towers_training = train(preset, featurizer, train_rows, log)
        model, training = train_dlrm(preset, featurizer, train_rows, towers, log, click_loss)
    else:
        model, training = train(preset, featurizer, train_rows, log, click_loss)
    fit_calibrators = lambda scorer: calibrators_for(scorer, featurizer, calibration_rows, args)  # noqa: E731
    calibrators = fit_calibrators(model)
    with torch.no_grad():
        ad_embeddings = model.ad_embed(torch.from_numpy(store.ad_categorical), torch.from_numpy(store.ad_title), torch.from_numpy(store.ad_numeric)).numpy()
    report = evaluate(model, featurizer, test_rows, calibrators, ad_embeddings, preset.recall_requests, preset.seed)
    if args.scorer == "dlrm":
        report["comparison"] = {"multitower": ranking_report(towers, featurizer, test_rows, fit_calibrators(towers)), "multitower_training": towers_training}
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


def calibrators_for(model: AdModel | DLRM, featurizer: Featurizer, calibration_rows: np.ndarray, args: argparse.Namespace) -> dict:
    impressions = featurizer.world.impressions
    ctr_logit, cvr_logit = predict(model, featurizer, calibration_rows)
    clicked = impressions.click[calibration_rows]
    return {
        "ctr": calibration.FITTERS[args.ctr_calibration](ctr_logit, clicked.astype(np.float64)),
        "cvr": calibration.FITTERS[args.cvr_calibration](cvr_logit[clicked], impressions.conversion[calibration_rows][clicked].astype(np.float64)),
    }


def load_towers(directory: Path, preset: Preset, store: FeatureStore) -> AdModel:
    """The multi-tower model of another run's directory, checked to be this world's: its ad embeddings
    must be what its ad tower gives this run's catalog features."""
    manifest = json.loads((directory / "manifest.json").read_text())
    if manifest.get("scorer", "multitower") != "multitower" or manifest["preset"] != preset.name or manifest["seed"] != preset.seed:
        raise SystemExit(f"{directory} is not a multi-tower model of preset {preset.name} seed {preset.seed}")
    model = AdModel(model_shape(preset))
    model.load_state_dict(torch.jit.load(str(directory / "model.pt")).state_dict())
    model.eval()
    entry = manifest["files"]["ad_embeddings.f32"]
    saved = np.fromfile(directory / "ad_embeddings.f32", dtype="<f4").reshape(entry["shape"])[:len(store.ad_categorical)]
    with torch.no_grad():
        ours = model.ad_embed(torch.from_numpy(store.ad_categorical), torch.from_numpy(store.ad_title), torch.from_numpy(store.ad_numeric)).numpy()
    if saved.shape != ours.shape or float(np.abs(saved - ours).max()) > 1e-4:
        raise SystemExit(f"{directory} was trained on another catalog than this run's world")
    return model


if __name__ == "__main__":
    main()
