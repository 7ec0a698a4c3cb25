"""HTTP calls to a running adserve daemon, with urllib from the standard library."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Optional

from .protocol import AdRequest, AdResponse, Event, decode_ad_response, encode_ad_request, encode_event

FLATBUFFERS_CONTENT_TYPE = "application/x-flatbuffers"


class AdserveError(Exception):
    """A refusal from the daemon: its HTTP status and the `{"error": {"code", "message"}}` it sent."""

    def __init__(self, status: int, code: str, message: str, retry_after: Optional[str] = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        # Sent with 503 (load shed, draining): seconds to wait before retrying.
        self.retry_after = retry_after


@dataclass
class RecordedEvent:
    event_id: str
    charged_micros: float
    # The charge was cut short by the campaign's budget.
    capped: bool


class Client:
    """One daemon at `base_url` (for example http://127.0.0.1:8080); each call is one HTTP request."""

    def __init__(self, base_url: str, timeout_s: float = 5.0):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def post(self, path: str, body: bytes, content_type: str) -> bytes:
        """POSTs `body` and returns the answer's bytes; raises AdserveError for any status but 200."""
        request = urllib.request.Request(f"{self.base_url}{path}", data=body, method="POST", headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                return answer.read()
        except urllib.error.HTTPError as refusal:
            raw = refusal.read()
            try:
                error = json.loads(raw)["error"]
                code, message = str(error["code"]), str(error["message"])
            except (ValueError, KeyError, TypeError):
                code, message = "http_error", raw.decode("utf-8", "replace").strip() or str(refusal.reason)
            raise AdserveError(refusal.code, code, message, refusal.headers.get("Retry-After")) from None

    def post_ad_request(self, body: bytes) -> bytes:
        """POST /v1/ads with an encoded AdRequest; the AdResponse bytes."""
        return self.post("/v1/ads", body, FLATBUFFERS_CONTENT_TYPE)

    def request_ads(self, request: AdRequest) -> AdResponse:
        return decode_ad_response(self.post_ad_request(encode_ad_request(request)))

    def send_event(self, event: Event, binary: bool = False) -> RecordedEvent:
        """POST /v1/events as JSON or, with `binary`, as an Event FlatBuffer. A repeated event is AdserveError 409."""
        if binary:
            answer = self.post("/v1/events", encode_event(event), FLATBUFFERS_CONTENT_TYPE)
        else:
            answer = self.post("/v1/events", json.dumps(event.to_json_dict()).encode("utf-8"), "application/json")
        recorded = json.loads(answer)
        return RecordedEvent(event_id=recorded["eventId"], charged_micros=recorded["chargedMicros"], capped=recorded["capped"])
