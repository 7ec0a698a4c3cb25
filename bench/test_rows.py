"""`/usr/bin/python3 bench/test_rows.py MODEL_DIR OUT.json`: the model's held-out test impressions as
ad requests, for bench/precision.ts to score through the engine.

Rebuilds the training world from the manifest's preset and seed (train/world.py is deterministic),
takes the rows train/__main__.py holds out for its report (days past calibration) and writes, per
row, the request fields the engine featurises, the shown ad's catalog index and the click label.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from train.presets import preset as load_preset  # noqa: E402
from train.world import CATEGORIES, build_world  # noqa: E402


def main() -> None:
    model_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    manifest = json.loads((model_dir / "manifest.json").read_text())
    preset = load_preset(manifest["preset"], seed=manifest["seed"])
    world = build_world(preset)
    log, users = world.impressions, world.users
    rows = np.flatnonzero(log.day >= preset.history_days + preset.train_days + preset.calibration_days)
    user_features = {f["name"]: f for f in manifest["features"]["user"]["categorical"]}
    age = user_features["age_bucket"]
    countries, languages = user_features["country"]["vocabulary"], user_features["language"]["vocabulary"]
    user_ids, product_ids = users.ids, world.ads.product_ids()
    # request_features.py reads hour and weekday from the timestamp: (days + 3) % 7 is the weekday.
    base_day = 20_454 - (20_454 + 3) % 7
    records = []
    for row in rows:
        user = int(log.user[row])
        bucket = int(users.age_bucket[user])
        low, high = age["buckets"][bucket] if bucket >= 0 else (0, 0)
        minutes = (base_day + int(log.weekday[row])) * 1440 + int(log.hour[row]) * 60
        record = {
            "userId": user_ids[user],
            "yob": age["reference_year"] - (low + high) // 2 if bucket >= 0 else 0,
            "gender": int(users.gender[user]) + 1,
            "country": countries[int(users.country[user])],
            "language": languages[int(users.language[user])],
            "placement": int(log.placement[row]) + 1,
            "deviceType": int(log.device[row]) + 1,
            "page": int(log.page[row]),
            "timestampMs": minutes * 60_000,
            "ad": int(log.ad[row]),
            "click": bool(log.click[row]),
        }
        if log.query[row] >= 0:
            record["query"] = world.queries[int(log.query[row])]
        if log.product_ad[row] >= 0:
            record["productId"] = product_ids[int(log.product_ad[row])]
        if log.page_category[row] >= 0:
            record["categoryId"] = CATEGORIES[int(log.page_category[row])]
        records.append(record)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": manifest["version"], "rows": records}))
    print(f"{len(records)} test rows, CTR {log.click[rows].mean():.4f}")


if __name__ == "__main__":
    main()
