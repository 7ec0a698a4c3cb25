"""Reference featurisation of serving requests, for parity tests against the C++ featuriser.

Reads JSON lines of request fields on stdin and writes the model inputs the manifest's feature spec
defines, one JSON line each: `python3 -m train.request_features MODEL_DIR < requests.jsonl`.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from . import text


def featurize(fields: dict, features: dict, categories: list[str]) -> dict:
    user = {f["name"]: f for f in features["user"]["categorical"]}
    vocab = lambda name: {value: index + 1 for index, value in enumerate(user[name]["vocabulary"])}  # noqa: E731
    age = 0
    yob = fields.get("yob", 0)
    if yob > 0:
        years = user["age_bucket"]["reference_year"] - yob
        age = next((i + 1 for i, (low, high) in enumerate(user["age_bucket"]["buckets"]) if low <= years <= high), 0)
    gender = fields.get("gender", 0)
    language = fields.get("language", "")
    for separator in "-_":
        language = language.split(separator)[0]
    minutes = math.floor(fields["timestamp_ms"] / 60_000) + fields.get("utc_offset_minutes", 0)
    days = math.floor(minutes / 1440)
    device = fields.get("device", 0)
    placement = fields["placement"]
    out = {
        "userCategorical": [age, gender if gender <= 3 else 0, vocab("country").get(fields.get("country", "").upper(), 0),
                            vocab("language").get(language.lower(), 0)],
        "contextCategorical": [placement, (minutes // 60) % 24 + 1, (days + 3) % 7 + 1, device if device <= 4 else 0],
        "logPage": math.log1p(fields.get("page", 0)),
        "search": placement == 1,
    }
    hashing = features["hashing"]
    if out["search"]:
        out["queryTokens"] = text.token_buckets(fields.get("query", ""), hashing["query"]["buckets"], hashing["query"]["max_tokens"])
    else:
        category_ids = {name: index + 1 for index, name in enumerate(categories)}
        product = fields.get("product_id", "")
        out["pageCategory"] = category_ids.get(fields.get("category_id", ""), 0)
        out["pageProduct"] = text.bucket(product, hashing["product"]["buckets"]) if product else 0
    return out


def main() -> None:
    manifest = json.loads((Path(sys.argv[1]) / "manifest.json").read_text())
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(featurize(json.loads(line), manifest["features"], manifest["categories"])))


if __name__ == "__main__":
    main()
