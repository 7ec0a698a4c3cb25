"""Command-line example: one ad request or one event against a running daemon, answers as JSON.

    /usr/bin/python3 -m adserve_client --url http://127.0.0.1:8080 ads '{"id": "r1", "placement": "Search", "query": "running shoes"}'
    /usr/bin/python3 -m adserve_client --url http://127.0.0.1:8080 event r1-0-impression impression '<event_token>'

The request is the AdRequest in JSON with the schema's field names (enum values by name), given
inline, as @file or as - for stdin. A refusal prints {"error": {...}} on stderr and exits with 1.
"""
import argparse
import base64
import dataclasses
import json
import sys
import urllib.error

from .client import AdserveError, Client
from .protocol import AdRequest, Event, decode_ad_response, encode_ad_request, encode_event


def _read_request(argument: str) -> AdRequest:
    if argument == "-":
        text = sys.stdin.read()
    elif argument.startswith("@"):
        with open(argument[1:], encoding="utf-8") as file:
            text = file.read()
    else:
        text = argument
    return AdRequest.from_dict(json.loads(text))


def _base64(body: bytes) -> str:
    return base64.b64encode(body).decode("ascii")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="adserve_client", description="Talks to an adserve daemon.")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the daemon's base URL")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer")
    parser.add_argument("--raw", action="store_true", help="also print the bytes sent and received, base64")
    commands = parser.add_subparsers(dest="command", required=True)
    ads = commands.add_parser("ads", help="POST /v1/ads")
    ads.add_argument("request", help="AdRequest as JSON, @file or -")
    event = commands.add_parser("event", help="POST /v1/events")
    event.add_argument("event_id")
    event.add_argument("type", choices=["impression", "click", "conversion"])
    event.add_argument("token", help="the ad's event_token, byte for byte")
    event.add_argument("--timestamp-ms", type=int)
    event.add_argument("--value-micros", type=int, help="order value of a conversion")
    event.add_argument("--binary", action="store_true", help="send an Event FlatBuffer instead of JSON")
    args = parser.parse_args(argv)

    client = Client(args.url, args.timeout)
    try:
        if args.command == "ads":
            try:
                sent = encode_ad_request(_read_request(args.request))
            except (OSError, TypeError, ValueError) as bad_request:
                parser.error(f"request: {bad_request}")
            received = client.post_ad_request(sent)
            output = {"response": decode_ad_response(received).to_dict()}
            if args.raw:
                output.update(sent=_base64(sent), received=_base64(received))
        else:
            fields = Event(args.event_id, args.type, args.token, args.timestamp_ms, args.value_micros)
            output = {"recorded": dataclasses.asdict(client.send_event(fields, binary=args.binary))}
            if args.raw and args.binary:
                output["sent"] = _base64(encode_event(fields))
    except AdserveError as refusal:
        json.dump({"error": {"status": refusal.status, "code": refusal.code, "message": refusal.message}}, sys.stderr)
        sys.stderr.write("\n")
        return 1
    except (urllib.error.URLError, OSError) as unreachable:
        json.dump({"error": {"code": "unreachable", "message": str(getattr(unreachable, "reason", unreachable))}}, sys.stderr)
        sys.stderr.write("\n")
        return 1
    json.dump(output, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
