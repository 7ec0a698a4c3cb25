"""A synthetic retail-media world whose click and conversion probabilities are known exactly.

Generative model (all draws from one seeded numpy Generator, so a preset and seed fix every byte):

Users. Demographics (age bucket, gender, country, language, primary device) are drawn independently.
Interests over product categories are softmax((T_age[a] + T_gender[g] + T_country[c] + noise_u) / 0.7)
with Gaussian tilts T, so demographics partly predict interests. Activity ~ logNormal; click and
purchase propensities ~ Normal. The 30-day feature-store aggregates are Poisson draws from these
latents: sessions, orders, sponsored clicks (from the click propensity) and views per category
(proportional to interest). A share of users is
unknown: no feature-store record, and half of them also lack age and gender.

Ads. Advertisers have a home category and a brand. Each ad belongs to a campaign of its advertiser,
is in the home category with probability 0.9, has a title (brand + three category words, sometimes a
modifier), a format, a log-normal price around its category's mean, a latent quality ~ N(0, 0.5), a
landing-page quality and a review rating (1-5 stars) tied to it. Campaigns carry the bid type (CPC 70 %, CPM 20 %, CPA 10 %) and a bid.

Impressions. Per day: a user (Zipf over a random ranking), a placement (search 35 %, product page
25 %, category 15 %, homepage 15 %, cart 10 %), an intent category drawn from the user's interests,
context (search: a query of intent words; product page and cart: a product of the intent category
and its category; category page: the intent category), hour (diurnal), weekday, device (the user's own 80 % of the
time), page depth. The logged ad comes from a mixed policy (60 % intent category, 25 % another
interest, 15 % uniform) at a position 0-3.

Truth (see true_ctr_logit / true_cvr_logit): click and conversion logits are sums of an intent match
term weighted by placement, user interest in the ad's category, ad quality, query-title word overlap,
position bias, device, hour and format x placement effects and the user's propensities. Clicks and
conversions (given a click) are Bernoulli draws from the sigmoids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .presets import Preset

CATEGORY_WORDS: dict[str, list[str]] = {
    "shoes": ["running", "shoes", "sneakers", "boots", "trail", "sandals", "leather", "heels", "slippers", "hiking", "socks", "insoles"],
    "electronics": ["tv", "4k", "hdmi", "cable", "usb", "charger", "headphones", "bluetooth", "speaker", "laptop", "monitor", "tablet"],
    "grocery": ["coffee", "beans", "organic", "tea", "pasta", "olive", "oil", "cereal", "snacks", "chocolate", "rice", "spices"],
    "pets": ["dog", "cat", "food", "grain", "free", "litter", "leash", "toy", "treats", "aquarium", "collar", "bed"],
    "kids": ["kids", "toddler", "stroller", "diapers", "crib", "lego", "puzzle", "rain", "boots", "backpack", "crayons", "bottle"],
    "home": ["sofa", "lamp", "rug", "curtains", "pillow", "blanket", "mirror", "shelf", "vase", "candle", "frame", "clock"],
    "kitchen": ["blender", "knife", "pan", "pot", "kettle", "toaster", "mixer", "cutting", "board", "mug", "air", "fryer"],
    "beauty": ["shampoo", "lipstick", "moisturizer", "serum", "perfume", "mascara", "sunscreen", "nail", "polish", "cleanser", "brush", "conditioner"],
    "sports": ["yoga", "mat", "dumbbells", "bike", "helmet", "tennis", "racket", "football", "gloves", "treadmill", "jersey", "bottle"],
    "garden": ["hose", "seeds", "shovel", "planter", "lawn", "mower", "fertilizer", "gloves", "trimmer", "soil", "sprinkler", "rake"],
    "fashion": ["dress", "jeans", "jacket", "shirt", "sweater", "scarf", "hat", "belt", "coat", "skirt", "hoodie", "shorts"],
    "books": ["novel", "cookbook", "thriller", "biography", "fantasy", "paperback", "hardcover", "poetry", "history", "comics", "textbook", "audiobook"],
    "tools": ["drill", "hammer", "screwdriver", "wrench", "saw", "toolbox", "ladder", "tape", "measure", "sander", "pliers", "level"],
    "auto": ["tires", "wiper", "blades", "motor", "oil", "car", "battery", "seat", "cover", "dash", "cam", "charger"],
    "health": ["vitamins", "protein", "powder", "bandages", "thermometer", "supplements", "fish", "oil", "probiotic", "mask", "sanitizer", "pills"],
    "office": ["printer", "paper", "pens", "notebook", "stapler", "desk", "chair", "ink", "folder", "calculator", "markers", "envelopes"],
    "gaming": ["console", "controller", "headset", "game", "keyboard", "mouse", "gpu", "chair", "monitor", "joystick", "vr", "pad"],
    "jewelry": ["necklace", "ring", "earrings", "bracelet", "watch", "gold", "silver", "diamond", "pendant", "chain", "pearl", "charm"],
}
CATEGORIES = list(CATEGORY_WORDS)
MODIFIERS = ["best", "cheap", "new", "sale", "for", "men", "women", "black", "white", "large", "small", "pro", "mini", "premium", "set", "pack"]
# Names match the FlatBuffers enums (schemas/common.fbs) where the protocol has one.
PLACEMENTS = ["Search", "ProductPage", "Category", "Homepage", "Cart"]
PLACEMENT_SHARE = [0.35, 0.25, 0.15, 0.15, 0.10]
DEVICES = ["Desktop", "Mobile", "Tablet", "App"]
GENDERS = ["Female", "Male", "Other"]
AGE_BUCKETS = [(18, 24), (25, 34), (35, 44), (45, 54), (55, 64), (65, 120)]
COUNTRIES = ["US", "GB", "DE", "FR", "CA", "AU", "JP", "BR"]
LANGUAGES = ["en", "de", "fr", "ja", "pt"]
FORMATS = ["text", "image", "video", "product_card"]
BID_TYPES = ["CPC", "CPM", "CPA"]
# The calendar year ages are computed against (yob -> age bucket), fixed so features are reproducible.
REFERENCE_YEAR = 2026

POSITION_BIAS = np.array([0.0, -0.3, -0.55, -0.75])
INTENT_WEIGHT = np.array([1.8, 1.4, 1.4, 0.6, 1.0])  # by placement
DEVICE_EFFECT = np.array([0.0, -0.1, 0.0, 0.15])
HOUR_EFFECT = np.array([-0.2] * 6 + [0.0] * 12 + [0.15] * 5 + [0.0])
FORMAT_BY_PLACEMENT = np.array([  # rows: placement, columns: format
    [0.0, 0.05, -0.1, 0.15],
    [0.0, 0.1, 0.0, 0.1],
    [0.0, 0.1, 0.05, 0.05],
    [-0.1, 0.1, 0.2, 0.0],
    [0.0, 0.0, -0.1, 0.15],
])
CTR_BASE = -6.1
CVR_BASE = -2.6


@dataclass
class Users:
    age_bucket: np.ndarray       # [U] int, index into AGE_BUCKETS, -1 unknown
    gender: np.ndarray           # [U] int, index into GENDERS, -1 unknown
    country: np.ndarray          # [U] int
    language: np.ndarray         # [U] int
    device: np.ndarray           # [U] int, primary device
    interests: np.ndarray        # [U, C] float, rows sum to 1 (latent)
    click_propensity: np.ndarray  # [U] (latent)
    purchase_propensity: np.ndarray  # [U] (latent)
    known: np.ndarray            # [U] bool: has a feature-store record
    sessions_30d: np.ndarray     # [U] int
    orders_30d: np.ndarray       # [U] int
    ad_clicks_30d: np.ndarray    # [U] int: sponsored-result clicks, a noisy view of click propensity
    views_30d: np.ndarray        # [U, C] int

    @property
    def ids(self) -> list[str]:
        return [f"u{index:07d}" for index in range(len(self.known))]


@dataclass
class Ads:
    advertiser: np.ndarray       # [A] int
    campaign: np.ndarray         # [A] int, global campaign index
    campaign_advertiser: np.ndarray  # [campaigns] int
    campaign_bid_type: np.ndarray    # [campaigns] int
    category: np.ndarray         # [A] int
    format: np.ndarray           # [A] int
    log_price: np.ndarray        # [A] float
    quality: np.ndarray          # [A] float (latent)
    rating: np.ndarray           # [A] float in [1, 5]: the product's review stars, a noisy view of quality
    landing_quality: np.ndarray  # [A] float in [0.2, 1]
    bid_type: np.ndarray         # [A] int, the campaign's
    campaign_bid_micros: np.ndarray  # [campaigns] int64: CPC per click, CPM per thousand impressions, CPA per conversion
    title: list[str]
    brands: list[str]            # [advertisers]
    advertiser_category: np.ndarray  # [advertisers] int

    def __len__(self) -> int:
        return len(self.category)

    def ids(self, offset: int = 0) -> list[str]:
        return [f"ad{index + offset:08d}" for index in range(len(self.category))]

    def product_ids(self, offset: int = 0) -> list[str]:
        return [f"p{index + offset:08d}" for index in range(len(self.category))]


@dataclass
class Impressions:
    """Columnar impression log."""

    day: np.ndarray
    user: np.ndarray
    placement: np.ndarray
    intent: np.ndarray
    query: np.ndarray            # index into World.queries, -1 when not a search
    product_ad: np.ndarray       # ad whose product the page shows, -1 when none
    page_category: np.ndarray    # category page shown, -1 when none
    hour: np.ndarray
    weekday: np.ndarray
    device: np.ndarray
    page: np.ndarray
    ad: np.ndarray
    position: np.ndarray
    p_click: np.ndarray
    p_conversion: np.ndarray
    click: np.ndarray
    conversion: np.ndarray

    def __len__(self) -> int:
        return len(self.day)

    def select(self, mask: np.ndarray) -> "Impressions":
        return Impressions(**{name: value[mask] for name, value in vars(self).items()})


@dataclass
class World:
    users: Users
    ads: Ads
    queries: list[str]
    query_words: np.ndarray      # [queries, vocabulary] bool
    title_words: np.ndarray      # [ads, vocabulary] bool
    category_log_price: np.ndarray  # [C] mean log price per category
    impressions: Impressions


def vocabulary() -> list[str]:
    words = sorted({word for words in CATEGORY_WORDS.values() for word in words} | set(MODIFIERS))
    return words


def _sample_rows(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a [n, k] probability matrix."""
    cumulative = np.cumsum(probabilities, axis=1)
    draws = rng.random(len(probabilities))[:, None] * cumulative[:, -1:]
    return np.minimum((cumulative < draws).sum(axis=1), probabilities.shape[1] - 1)


def _brand_name(rng: np.random.Generator) -> str:
    syllables = ["ka", "lo", "mi", "ra", "ve", "to", "zen", "qua", "bri", "no", "sa", "dex", "lu", "fi", "mar", "po"]
    return "".join(rng.choice(syllables, size=rng.integers(2, 4)))


def make_users(rng: np.random.Generator, preset: Preset) -> Users:
    count, categories = preset.users, len(CATEGORIES)
    age = rng.choice(len(AGE_BUCKETS), size=count, p=[0.14, 0.24, 0.22, 0.18, 0.12, 0.10])
    gender = rng.choice(len(GENDERS), size=count, p=[0.49, 0.48, 0.03])
    country = rng.choice(len(COUNTRIES), size=count, p=[0.4, 0.12, 0.1, 0.08, 0.08, 0.06, 0.08, 0.08])
    language = np.where(rng.random(count) < 0.8, np.array([0, 0, 1, 2, 0, 0, 3, 4])[country], rng.integers(0, len(LANGUAGES), count))
    device = rng.choice(len(DEVICES), size=count, p=[0.35, 0.45, 0.08, 0.12])
    tilt_age = rng.normal(0, 0.8, (len(AGE_BUCKETS), categories))
    tilt_gender = rng.normal(0, 0.8, (len(GENDERS), categories))
    tilt_country = rng.normal(0, 0.4, (len(COUNTRIES), categories))
    logits = tilt_age[age] + tilt_gender[gender] + tilt_country[country] + rng.normal(0, 0.6, (count, categories))
    interests = np.exp(logits / 0.7)
    interests /= interests.sum(axis=1, keepdims=True)
    activity = rng.lognormal(0.0, 0.6, count)
    purchase_propensity = rng.normal(0, 0.5, count)
    known = rng.random(count) >= preset.unknown_user_share
    views = rng.poisson(activity[:, None] * 200.0 * interests)
    sessions = rng.poisson(activity * 9.0)
    orders = rng.poisson(activity * 0.6 * np.exp(purchase_propensity))
    click_propensity = rng.normal(0, 0.3, count)
    ad_clicks = rng.poisson(activity * 6.0 * np.exp(2.0 * click_propensity))
    # Unknown users: no feature-store record, and half of them are anonymous (no age or gender).
    anonymous = ~known & (rng.random(count) < 0.5)
    return Users(
        age_bucket=np.where(anonymous, -1, age),
        gender=np.where(anonymous, -1, gender),
        country=country,
        language=language,
        device=device,
        interests=interests,
        click_propensity=click_propensity,
        purchase_propensity=purchase_propensity,
        known=known,
        sessions_30d=np.where(known, sessions, 0),
        orders_30d=np.where(known, orders, 0),
        ad_clicks_30d=np.where(known, ad_clicks, 0),
        views_30d=np.where(known[:, None], views, 0),
    )


def make_ads(rng: np.random.Generator, count: int, advertisers: int, category_log_price: np.ndarray,
             advertiser_category: np.ndarray, brands: list[str]) -> Ads:
    categories = len(CATEGORIES)
    advertiser = rng.integers(0, advertisers, count)
    # Each advertiser runs up to three campaigns; an ad belongs to one of its advertiser's.
    campaigns_per_advertiser = 3
    campaign = advertiser * campaigns_per_advertiser + rng.integers(0, campaigns_per_advertiser, count)
    campaign_advertiser = np.repeat(np.arange(advertisers), campaigns_per_advertiser)
    campaign_bid_type = rng.choice(len(BID_TYPES), size=advertisers * campaigns_per_advertiser, p=[0.7, 0.2, 0.1])
    bid_type = campaign_bid_type[campaign]
    # CPC $0.80 per click; CPM $20 per mille; CPA $6 per conversion (about CPC / CVR), so no bid
    # type outranks the others by construction.
    median_bid = np.array([800_000, 20_000_000, 6_000_000])[campaign_bid_type]
    campaign_bid = (np.round(median_bid * rng.lognormal(0, 0.4, len(campaign_bid_type)) / 10_000) * 10_000).astype(np.int64)
    category = np.where(rng.random(count) < 0.9, advertiser_category[advertiser], rng.integers(0, categories, count))
    quality = rng.normal(0, 0.5, count)
    landing = 0.2 + 0.8 / (1 + np.exp(-(1.5 * quality + rng.normal(0, 0.5, count))))
    rating = np.clip(3.8 + 1.2 * quality + rng.normal(0, 0.2, count), 1.0, 5.0)
    log_price = category_log_price[category] + rng.normal(0, 0.5, count)
    words = [CATEGORY_WORDS[name] for name in CATEGORIES]
    titles = []
    for index in range(count):
        chosen = rng.choice(words[category[index]], size=3, replace=False)
        parts = [brands[advertiser[index]], *chosen]
        if rng.random() < 0.3:
            parts.append(MODIFIERS[rng.integers(len(MODIFIERS))])
        titles.append(" ".join(parts))
    return Ads(
        advertiser=advertiser, campaign=campaign, campaign_advertiser=campaign_advertiser,
        campaign_bid_type=campaign_bid_type, category=category, format=rng.choice(len(FORMATS), size=count, p=[0.2, 0.4, 0.1, 0.3]),
        log_price=log_price, quality=quality, rating=rating, landing_quality=landing, bid_type=bid_type,
        campaign_bid_micros=campaign_bid, title=titles, brands=brands, advertiser_category=advertiser_category,
    )


def word_matrix(texts: list[str], words: list[str]) -> np.ndarray:
    position = {word: index for index, word in enumerate(words)}
    matrix = np.zeros((len(texts), len(words)), dtype=bool)
    for row, text in enumerate(texts):
        for word in text.split():
            column = position.get(word)
            if column is not None:
                matrix[row, column] = True
    return matrix


def true_ctr_logit(world: "World", user: np.ndarray, ad: np.ndarray, placement: np.ndarray, intent: np.ndarray,
                   query: np.ndarray, device: np.ndarray, hour: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Exact click logit, row-wise (all arguments [n]) or requests x ads (request arguments [R, 1], ad [1, A])."""
    users, ads = world.users, world.ads
    category = ads.category[ad]
    match = (category == intent).astype(float)
    interest = users.interests[user, category]
    if np.shape(query) == np.shape(ad):
        overlap = np.where(query >= 0, (world.query_words[np.maximum(query, 0)] & world.title_words[ad]).sum(axis=-1), 0)
    else:
        overlap = _overlap_broadcast(world, query, ad)
    return (CTR_BASE + INTENT_WEIGHT[placement] * match + 0.9 * np.log(len(CATEGORIES) * interest + 0.1)
            + 0.6 * ads.quality[ad] + 0.35 * overlap + POSITION_BIAS[position] + DEVICE_EFFECT[device]
            + HOUR_EFFECT[hour] + FORMAT_BY_PLACEMENT[placement, ads.format[ad]] + users.click_propensity[user])


def _overlap_broadcast(world: "World", query: np.ndarray, ad: np.ndarray) -> np.ndarray:
    # query: [R, 1], ad: [1, A] -> [R, A] shared-word counts via a matrix product.
    q = world.query_words[np.maximum(query[:, 0], 0)].astype(np.float32)
    t = world.title_words[ad[0]].astype(np.float32)
    return np.where(query >= 0, q @ t.T, 0.0)


def true_cvr_logit(world: "World", user: np.ndarray, ad: np.ndarray, placement: np.ndarray, intent: np.ndarray) -> np.ndarray:
    users, ads = world.users, world.ads
    category = ads.category[ad]
    price_z = ads.log_price[ad] - world.category_log_price[category]
    landing_z = (ads.landing_quality[ad] - 0.6) / 0.2
    return (CVR_BASE + 0.5 * ads.quality[ad] + 0.6 * users.purchase_propensity[user] + 0.5 * (category == intent)
            - 0.3 * price_z + 0.3 * (placement == PLACEMENTS.index("Cart")) + 0.2 * landing_z)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def make_queries(rng: np.random.Generator, intents: np.ndarray, cache: dict[str, int], queries: list[str]) -> np.ndarray:
    ids = np.empty(len(intents), dtype=np.int64)
    for row, intent in enumerate(intents):
        words = CATEGORY_WORDS[CATEGORIES[intent]]
        parts = list(rng.choice(words, size=rng.integers(1, 4), replace=False))
        if rng.random() < 0.3:
            parts.insert(0, MODIFIERS[rng.integers(len(MODIFIERS))])
        text = " ".join(parts)
        if text not in cache:
            cache[text] = len(queries)
            queries.append(text)
        ids[row] = cache[text]
    return ids


def build_world(preset: Preset) -> World:
    rng = np.random.default_rng(preset.seed)
    categories = len(CATEGORIES)
    users = make_users(rng, preset)
    category_log_price = rng.uniform(2.0, 5.0, categories)
    advertiser_category = rng.integers(0, categories, preset.advertisers)
    brands = [_brand_name(rng) for _ in range(preset.advertisers)]
    ads = make_ads(rng, preset.ads, preset.advertisers, category_log_price, advertiser_category, brands)
    words = vocabulary()
    ads_by_category = [np.flatnonzero(ads.category == c) for c in range(categories)]

    total_days = preset.history_days + preset.train_days + preset.calibration_days + preset.test_days
    n = preset.impressions_per_day * total_days
    popularity = 1.0 / np.arange(1, preset.users + 1) ** 1.05
    popularity = popularity[rng.permutation(preset.users)]
    popularity /= popularity.sum()
    day = np.repeat(np.arange(total_days), preset.impressions_per_day)
    user = rng.choice(preset.users, size=n, p=popularity)
    placement = rng.choice(len(PLACEMENTS), size=n, p=PLACEMENT_SHARE)
    intent = _sample_rows(rng, users.interests[user])

    def random_ad_in(category_per_row: np.ndarray) -> np.ndarray:
        picks = np.empty(len(category_per_row), dtype=np.int64)
        for c in range(categories):
            rows = np.flatnonzero(category_per_row == c)
            pool = ads_by_category[c] if len(ads_by_category[c]) else np.arange(len(ads))
            picks[rows] = pool[rng.integers(0, len(pool), len(rows))]
        return picks

    queries: list[str] = []
    query = np.full(n, -1, dtype=np.int64)
    search_rows = np.flatnonzero(placement == 0)
    query[search_rows] = make_queries(rng, intent[search_rows], {}, queries)
    product_ad = np.where(np.isin(placement, [1, 4]), random_ad_in(intent), -1)
    # Category pages show the intent category; product pages and the cart send their product's.
    page_category = np.where(placement == 2, intent, np.where(product_ad >= 0, ads.category[np.maximum(product_ad, 0)], -1))
    hour_weights = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 3.5, 3.5, 3.5, 4, 3.5, 3.5, 3.5, 3.5, 4, 5, 6, 6.5, 6, 4, 2])
    hour = rng.choice(24, size=n, p=hour_weights / hour_weights.sum())
    weekday = (day + rng.integers(0, 7)) % 7
    device = np.where(rng.random(n) < 0.8, users.device[user], rng.integers(0, len(DEVICES), n))
    page = np.minimum(rng.geometric(0.45, n) - 1, 20)
    policy = rng.random(n)
    other_interest = _sample_rows(rng, users.interests[user])
    ad = np.where(policy < 0.6, random_ad_in(intent), np.where(policy < 0.85, random_ad_in(other_interest), rng.integers(0, len(ads), n)))
    position = rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1])

    world = World(users=users, ads=ads, queries=queries, query_words=word_matrix(queries, words),
                  title_words=word_matrix(ads.title, words), category_log_price=category_log_price, impressions=None)  # type: ignore[arg-type]
    p_click = sigmoid(true_ctr_logit(world, user, ad, placement, intent, query, device, hour, position))
    p_conversion = sigmoid(true_cvr_logit(world, user, ad, placement, intent))
    click = rng.random(n) < p_click
    conversion = click & (rng.random(n) < p_conversion)
    world.impressions = Impressions(day=day, user=user, placement=placement, intent=intent, query=query, product_ad=product_ad,
                                    page_category=page_category, hour=hour, weekday=weekday, device=device, page=page, ad=ad,
                                    position=position, p_click=p_click, p_conversion=p_conversion, click=click, conversion=conversion)
    return world
