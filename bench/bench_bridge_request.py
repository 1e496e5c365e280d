"""
Time of L{responses_proxy.bridge.request.convertRequest} on real Codex requests.

Prints figures only; nothing is asserted. Run with
C{PYTHONPATH=. .venv/bin/python bench/bench_bridge_request.py}.

The captured fixtures have their long texts elided (about 10 KB each); the "40 KB" case pads
the developer prompt back to the size Codex really sends (C/002 was 39 300 bytes on the wire).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

from responses_proxy.bridge.profiles import DEFAULT_PROFILE, PROFILES, Profile
from responses_proxy.bridge.request import convertRequest, parseRequestBody

FIXTURES = Path(__file__).parent.parent / "tests" / "fixtures" / "codex-0.169.0"
ROUNDS = 2000


def _body(name: str) -> dict:
    with (FIXTURES / f"{name}-POST.json").open(encoding="utf-8") as f:
        return json.load(f)["body"]


def _padded(name: str, size: int) -> dict:
    body = copy.deepcopy(_body(name))
    missing = size - len(json.dumps(body))
    if missing > 0:
        body["input"][0]["content"][0]["text"] += "x" * missing
    return body


def _time(label: str, body: dict, profile: Profile = DEFAULT_PROFILE) -> None:
    raw = json.dumps(body).encode("utf-8")
    start = time.perf_counter()
    for _ in range(ROUNDS):
        convertRequest(body, profile)
    convert = (time.perf_counter() - start) / ROUNDS
    start = time.perf_counter()
    for _ in range(ROUNDS):
        parseRequestBody(raw)
    parse = (time.perf_counter() - start) / ROUNDS
    print(
        f"{label:<22} {len(raw) / 1024:6.1f} KiB  convert {convert * 1e6:7.1f} us"
        f"  parse {parse * 1e6:7.1f} us"
    )


def main() -> None:
    for name in ("A/001", "C/002", "E/002", "F/002"):
        _time(name, _body(name))
    _time("C/002 padded to 40 KB", _padded("C/002", 40_000))
    print("provider profiles, C/002 padded to 40 KB:")
    padded = _padded("C/002", 40_000)
    for name in ("openai", "deepseek", "mistral", "cerebras"):
        _time(f"  {name}", padded, PROFILES[name])


if __name__ == "__main__":
    main()
