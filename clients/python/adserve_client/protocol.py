"""The adserve wire protocol in plain Python objects, over the code `flatc --python` generates.

Field names are the schemas' own (schemas/*.fbs), enum values their names ("Search", "Cpc"), money
integer micros. A request field left at None is not written, so the daemon applies its default.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import List, Optional

try:
    import flatbuffers
except ImportError as error:
    raise ImportError("adserve_client needs the FlatBuffers runtime: Debian's python3-flatbuffers, for /usr/bin/python3") from error

try:
    from adserve.fb import Ad as fb_ad
    from adserve.fb import AdRequest as fb_ad_request
    from adserve.fb import AdResponse as fb_ad_response
    from adserve.fb import Creative as fb_creative
    from adserve.fb import Device as fb_device
    from adserve.fb import Event as fb_event
    from adserve.fb import Geo as fb_geo
    from adserve.fb import Regs as fb_regs
    from adserve.fb import StageTiming as fb_stage_timing
    from adserve.fb import User as fb_user
    from adserve.fb.AuctionType import AuctionType
    from adserve.fb.BidType import BidType
    from adserve.fb.DeviceType import DeviceType
    from adserve.fb.EventType import EventType
    from adserve.fb.Gender import Gender
    from adserve.fb.NoFillReason import NoFillReason
    from adserve.fb.Placement import Placement
    from adserve.fb.ResponseStatus import ResponseStatus
except ImportError as error:  # the generated code is a build output, not part of this package
    raise ImportError(
        "adserve_client needs the flatc --python output of schemas/ on sys.path: run "
        "scripts/bootstrap.sh --build-only and add build/gen/python to PYTHONPATH"
    ) from error

_REQUEST_IDENTIFIER = b"ADRQ"
_RESPONSE_IDENTIFIER = b"ADRS"
_EVENT_IDENTIFIER = b"ADEV"


@dataclass
class User:
    id: Optional[str] = None
    yob: Optional[int] = None
    gender: Optional[str] = None
    segments: Optional[List[str]] = None
    consent: Optional[str] = None


@dataclass
class Device:
    type: Optional[str] = None
    os: Optional[str] = None
    language: Optional[str] = None


@dataclass
class Geo:
    country: Optional[str] = None
    region: Optional[str] = None
    city: Optional[str] = None
    zip: Optional[str] = None


@dataclass
class Regs:
    """Privacy regulation signals (OpenRTB regs); the daemon's docs/privacy.md says what each one does."""

    coppa: Optional[bool] = None
    gdpr: Optional[bool] = None
    us_privacy: Optional[str] = None
    gpp: Optional[str] = None
    gpp_sid: Optional[List[int]] = None


@dataclass
class AdRequest:
    """One ad decision; see schemas/ad_request.fbs for what each field means."""

    id: str
    placement: Optional[str] = None
    tmax_ms: Optional[int] = None
    user: Optional[User] = None
    device: Optional[Device] = None
    geo: Optional[Geo] = None
    query: Optional[str] = None
    product_id: Optional[str] = None
    category_id: Optional[str] = None
    slots: Optional[int] = None
    floor_cpm_micros: Optional[int] = None
    auction_type: Optional[str] = None
    blocked_advertisers: Optional[List[str]] = None
    blocked_categories: Optional[List[str]] = None
    blocked_products: Optional[List[str]] = None
    debug: Optional[bool] = None
    test: Optional[bool] = None
    timestamp_ms: Optional[int] = None
    utc_offset_minutes: Optional[int] = None
    session_id: Optional[str] = None
    page: Optional[int] = None
    cur: Optional[List[str]] = None
    regs: Optional[Regs] = None

    @classmethod
    def from_dict(cls, fields: dict) -> "AdRequest":
        """The request from its JSON form (the schema's field names); an unknown name is a TypeError."""
        nested = {"user": User, "device": Device, "geo": Geo, "regs": Regs}
        return cls(**{name: nested[name](**value) if name in nested and value is not None else value for name, value in fields.items()})


@dataclass
class Creative:
    title: str
    description: str
    image_url: str
    landing_url: str


@dataclass
class Ad:
    slot: int
    ad_id: str
    campaign_id: str
    advertiser_id: str
    product_id: str
    creative: Optional[Creative]
    bid_type: str
    bid_micros: int
    price_micros: int
    pctr: float
    pcvr: float
    ecpm_micros: int
    quality: float
    event_token: str


@dataclass
class StageTiming:
    stage: str
    nanos: int


@dataclass
class AdResponse:
    request_id: str
    status: str
    message: str
    ads: List[Ad]
    degraded: bool
    model_version: str
    timings: List[StageTiming]
    error_code: int
    cur: str
    no_fill_reason: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Event:
    """An impression, click or conversion of a served ad; `token` is the ad's event_token, unchanged."""

    event_id: str
    type: str
    token: str
    timestamp_ms: Optional[int] = None
    value_micros: Optional[int] = None

    def to_json_dict(self) -> dict:
        return {name: value for name, value in dataclasses.asdict(self).items() if value is not None}


def _enum_value(enum: type, name: str) -> int:
    value = getattr(enum, name, None)
    if not isinstance(value, int):
        raise ValueError(f"{name!r} is not a {enum.__name__}")
    return value


def _enum_name(enum: type, value: int) -> str:
    for name, member in vars(enum).items():
        if member == value and not name.startswith("_"):
            # flatc appends "_" to a value named like a Python keyword (NoFillReason.None); answer the schema's name.
            return name[:-1] if name.endswith("_") else name
    # A value appended to the schema after this client was generated.
    return str(value)


def _string_vector(builder: flatbuffers.Builder, values: List[str]) -> int:
    offsets = [builder.CreateString(value) for value in values]
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _optional_string(builder: flatbuffers.Builder, value: Optional[str]) -> int:
    return 0 if value is None else builder.CreateString(value)


def _optional_vector(builder: flatbuffers.Builder, values: Optional[List[str]]) -> int:
    return 0 if values is None else _string_vector(builder, values)


def _encode_user(builder: flatbuffers.Builder, user: User) -> int:
    user_id = _optional_string(builder, user.id)
    segments = _optional_vector(builder, user.segments)
    consent = _optional_string(builder, user.consent)
    fb_user.UserStart(builder)
    if user_id:
        fb_user.UserAddId(builder, user_id)
    if user.yob is not None:
        fb_user.UserAddYob(builder, user.yob)
    if user.gender is not None:
        fb_user.UserAddGender(builder, _enum_value(Gender, user.gender))
    if segments:
        fb_user.UserAddSegments(builder, segments)
    if consent:
        fb_user.UserAddConsent(builder, consent)
    return fb_user.UserEnd(builder)


def _encode_device(builder: flatbuffers.Builder, device: Device) -> int:
    os = _optional_string(builder, device.os)
    language = _optional_string(builder, device.language)
    fb_device.DeviceStart(builder)
    if device.type is not None:
        fb_device.DeviceAddType(builder, _enum_value(DeviceType, device.type))
    if os:
        fb_device.DeviceAddOs(builder, os)
    if language:
        fb_device.DeviceAddLanguage(builder, language)
    return fb_device.DeviceEnd(builder)


def _encode_geo(builder: flatbuffers.Builder, geo: Geo) -> int:
    country = _optional_string(builder, geo.country)
    region = _optional_string(builder, geo.region)
    city = _optional_string(builder, geo.city)
    zip_code = _optional_string(builder, geo.zip)
    fb_geo.GeoStart(builder)
    if country:
        fb_geo.GeoAddCountry(builder, country)
    if region:
        fb_geo.GeoAddRegion(builder, region)
    if city:
        fb_geo.GeoAddCity(builder, city)
    if zip_code:
        fb_geo.GeoAddZip(builder, zip_code)
    return fb_geo.GeoEnd(builder)


def _encode_regs(builder: flatbuffers.Builder, regs: Regs) -> int:
    us_privacy = _optional_string(builder, regs.us_privacy)
    gpp = _optional_string(builder, regs.gpp)
    gpp_sid = 0
    if regs.gpp_sid is not None:
        builder.StartVector(2, len(regs.gpp_sid), 2)
        for section in reversed(regs.gpp_sid):
            builder.PrependUint16(section)
        gpp_sid = builder.EndVector()
    fb_regs.RegsStart(builder)
    if regs.coppa is not None:
        fb_regs.RegsAddCoppa(builder, regs.coppa)
    if regs.gdpr is not None:
        fb_regs.RegsAddGdpr(builder, regs.gdpr)
    if us_privacy:
        fb_regs.RegsAddUsPrivacy(builder, us_privacy)
    if gpp:
        fb_regs.RegsAddGpp(builder, gpp)
    if gpp_sid:
        fb_regs.RegsAddGppSid(builder, gpp_sid)
    return fb_regs.RegsEnd(builder)


def encode_ad_request(request: AdRequest) -> bytes:
    """The AdRequest FlatBuffer (file identifier ADRQ) for POST /v1/ads or one WebSocket frame."""
    builder = flatbuffers.Builder(256)
    # Strings, vectors and tables are written before the table that refers to them.
    request_id = builder.CreateString(request.id)
    user = 0 if request.user is None else _encode_user(builder, request.user)
    device = 0 if request.device is None else _encode_device(builder, request.device)
    geo = 0 if request.geo is None else _encode_geo(builder, request.geo)
    regs = 0 if request.regs is None else _encode_regs(builder, request.regs)
    query = _optional_string(builder, request.query)
    product_id = _optional_string(builder, request.product_id)
    category_id = _optional_string(builder, request.category_id)
    session_id = _optional_string(builder, request.session_id)
    blocked_advertisers = _optional_vector(builder, request.blocked_advertisers)
    blocked_categories = _optional_vector(builder, request.blocked_categories)
    blocked_products = _optional_vector(builder, request.blocked_products)
    cur = _optional_vector(builder, request.cur)

    r = fb_ad_request
    r.AdRequestStart(builder)
    r.AdRequestAddId(builder, request_id)
    if request.placement is not None:
        r.AdRequestAddPlacement(builder, _enum_value(Placement, request.placement))
    if request.tmax_ms is not None:
        r.AdRequestAddTmaxMs(builder, request.tmax_ms)
    if user:
        r.AdRequestAddUser(builder, user)
    if device:
        r.AdRequestAddDevice(builder, device)
    if geo:
        r.AdRequestAddGeo(builder, geo)
    if query:
        r.AdRequestAddQuery(builder, query)
    if product_id:
        r.AdRequestAddProductId(builder, product_id)
    if category_id:
        r.AdRequestAddCategoryId(builder, category_id)
    if request.slots is not None:
        r.AdRequestAddSlots(builder, request.slots)
    if request.floor_cpm_micros is not None:
        r.AdRequestAddFloorCpmMicros(builder, request.floor_cpm_micros)
    if request.auction_type is not None:
        r.AdRequestAddAuctionType(builder, _enum_value(AuctionType, request.auction_type))
    if blocked_advertisers:
        r.AdRequestAddBlockedAdvertisers(builder, blocked_advertisers)
    if blocked_categories:
        r.AdRequestAddBlockedCategories(builder, blocked_categories)
    if blocked_products:
        r.AdRequestAddBlockedProducts(builder, blocked_products)
    if request.debug is not None:
        r.AdRequestAddDebug(builder, request.debug)
    if request.test is not None:
        r.AdRequestAddTest(builder, request.test)
    if request.timestamp_ms is not None:
        r.AdRequestAddTimestampMs(builder, request.timestamp_ms)
    if request.utc_offset_minutes is not None:
        r.AdRequestAddUtcOffsetMinutes(builder, request.utc_offset_minutes)
    if session_id:
        r.AdRequestAddSessionId(builder, session_id)
    if request.page is not None:
        r.AdRequestAddPage(builder, request.page)
    if cur:
        r.AdRequestAddCur(builder, cur)
    if regs:
        r.AdRequestAddRegs(builder, regs)
    builder.Finish(r.AdRequestEnd(builder), file_identifier=_REQUEST_IDENTIFIER)
    return bytes(builder.Output())


def _text(value: Optional[bytes]) -> str:
    return "" if value is None else value.decode("utf-8")


def _decode_ad(ad: fb_ad.Ad) -> Ad:
    creative = ad.Creative()
    return Ad(
        slot=ad.Slot(),
        ad_id=_text(ad.AdId()),
        campaign_id=_text(ad.CampaignId()),
        advertiser_id=_text(ad.AdvertiserId()),
        product_id=_text(ad.ProductId()),
        creative=None if creative is None else Creative(
            title=_text(creative.Title()),
            description=_text(creative.Description()),
            image_url=_text(creative.ImageUrl()),
            landing_url=_text(creative.LandingUrl()),
        ),
        bid_type=_enum_name(BidType, ad.BidType()),
        bid_micros=ad.BidMicros(),
        price_micros=ad.PriceMicros(),
        pctr=ad.Pctr(),
        pcvr=ad.Pcvr(),
        ecpm_micros=ad.EcpmMicros(),
        quality=ad.Quality(),
        event_token=_text(ad.EventToken()),
    )


def decode_ad_response(body: bytes) -> AdResponse:
    """Reads an AdResponse from adserve. There is no Python Verifier: only for bytes adserve sent."""
    if not fb_ad_response.AdResponse.AdResponseBufferHasIdentifier(body, 0):
        raise ValueError("body is not an AdResponse (file identifier ADRS missing)")
    response = fb_ad_response.AdResponse.GetRootAs(body, 0)
    timings = []
    for i in range(response.TimingsLength()):
        timing: fb_stage_timing.StageTiming = response.Timings(i)
        timings.append(StageTiming(stage=_text(timing.Stage()), nanos=timing.Nanos()))
    return AdResponse(
        request_id=_text(response.RequestId()),
        status=_enum_name(ResponseStatus, response.Status()),
        message=_text(response.Message()),
        ads=[_decode_ad(response.Ads(i)) for i in range(response.AdsLength())],
        degraded=response.Degraded(),
        model_version=_text(response.ModelVersion()),
        timings=timings,
        error_code=response.ErrorCode(),
        cur=_text(response.Cur()),
        no_fill_reason=_enum_name(NoFillReason, response.NoFillReason()),
    )


def encode_event(event: Event) -> bytes:
    """The Event FlatBuffer (file identifier ADEV) for POST /v1/events."""
    builder = flatbuffers.Builder(256)
    event_id = builder.CreateString(event.event_id)
    token = builder.CreateString(event.token)
    e = fb_event
    e.EventStart(builder)
    e.EventAddEventId(builder, event_id)
    e.EventAddType(builder, _enum_value(EventType, event.type.capitalize()))
    e.EventAddToken(builder, token)
    if event.timestamp_ms is not None:
        e.EventAddTimestampMs(builder, event.timestamp_ms)
    if event.value_micros is not None:
        e.EventAddValueMicros(builder, event.value_micros)
    builder.Finish(e.EventEnd(builder), file_identifier=_EVENT_IDENTIFIER)
    return bytes(builder.Output())
