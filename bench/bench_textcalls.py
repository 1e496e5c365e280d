"""
Cost and hold-back latency of L{responses_proxy.bridge.textcalls.TextCallHealer}.

The "long plain answer" is the project's own Markdown (README and docs: prose, lists,
links, inline code and fenced code with C{<} and C{[} in it), cut into chunks of 1-8
pseudo-tokens (a GPT-style pre-tokenisation: a word with its leading space, a run of
punctuation, a run of whitespace), as chat servers stream it. The near-miss text is
prose and code full of things that start like markers (C{<tool}, C{<|}, C{<｜},
C{[TOOL}, C{a < b}, HTML, generics).

Prints:
  (a) microseconds per chunk with and without the healer (the baseline only
      collects the chunks);
  (b) for every character, how many chunks and characters after its arrival it is
      released (p50 / p99 / max), on both texts;
  (c) the cost of healing one long call (a 100 KB argument) fed in small chunks;
  (d) adversarial inputs: one long feed full of failing openers, and values full of
      closing tags that do not end them (both must stay linear).
Nothing is asserted.

Run with C{PYTHONPATH=. .venv/bin/python bench/bench_textcalls.py [rounds]}.
"""

from __future__ import annotations

import json
import random
import re
import sys
import time
from pathlib import Path

from responses_proxy.bridge.textcalls import CallPiece, TextCallHealer, TextPiece

ROOT = Path(__file__).resolve().parent.parent
TOOLS = {
    "shell": {"type": "object", "properties": {"command": {"type": "array"}}},
    "apply_patch": {"type": "object", "properties": {"input": {"type": "string"}}},
    "read": {"type": "object", "properties": {"path": {"type": "string"}}},
}
_TOKEN = re.compile(r" ?[A-Za-z0-9_]+| ?[^A-Za-z0-9_\s]+|\s+")

NEAR_MISS = """\
To call a tool the model writes <tool_call> in some formats, <|tool_call_begin|> in \
others, and DeepSeek uses <｜tool▁calls▁begin｜>; none of that is a call here. If a < b \
and b > c then a < c. Use Vec<T> or HashMap<K, V> in Rust, List<String> in Java, and \
<div class="x"><span>text</span></div> in HTML. The [TOOL] and [TOOL_CALL] tags, the \
<toolbar> element, <function> pointers, <|im_start|> tokens and <｜User｜> turns. \
Arrays [1, 2, 3] and links [docs](https://example.com/a<b>) and a <= b, x << 2, x <- y.
```rust
fn main() { let v: Vec<u8> = Vec::new(); if v.len() < 3 { println!("<tool_call>"); } }
```
Inline `<tool_call>` and `<invoke name="read">` are code. <tool_calls are not calls>.
"""


def tokens(text: str) -> list[str]:
    """
    Cut text into pseudo-tokens.
    """
    return _TOKEN.findall(text)


def chunked(text: str, seed: int) -> list[str]:
    """
    Group pseudo-tokens into chunks of 1-8 tokens.
    """
    rng = random.Random(seed)
    parts = tokens(text)
    assert "".join(parts) == text
    chunks = []
    index = 0
    while index < len(parts):
        size = rng.randint(1, 8)
        chunks.append("".join(parts[index : index + size]))
        index += size
    return chunks


def plainAnswer() -> str:
    """
    The project's Markdown, as one long answer.
    """
    names = ["README.md", "docs/DEVELOPING.md", "docs/bridge-request.md", "docs/bridge-stream.md"]
    return "\n\n".join((ROOT / name).read_text(encoding="utf-8") for name in names)


def costPerChunk(chunks: list[str], rounds: int) -> tuple[float, float]:
    """
    @return: best microseconds per chunk without and with the healer.
    """
    baseline = healed = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        out = []
        for chunk in chunks:
            out.append(chunk)
        baseline = min(baseline, time.perf_counter() - start)
        start = time.perf_counter()
        healer = TextCallHealer(TOOLS)
        out = []
        for chunk in chunks:
            out.extend(healer.feed(chunk))
        out.extend(healer.finish())
        healed = min(healed, time.perf_counter() - start)
        assert all(type(piece) is TextPiece for piece in out)
    return baseline / len(chunks) * 1e6, healed / len(chunks) * 1e6


def holdBack(chunks: list[str]) -> tuple[list[int], list[int]]:
    """
    For every character: chunks and characters between its arrival and its release.
    """
    healer = TextCallHealer(TOOLS)
    arrivedEnd: list[int] = []  # per character: offset fed when it arrived
    arrivedChunk: list[int] = []
    fed = released = 0
    chunkDelays: list[int] = []
    charDelays: list[int] = []

    def release(pieces: list, chunkIndex: int) -> None:
        nonlocal released
        for piece in pieces:
            assert type(piece) is TextPiece, piece
            for _ in piece.text:
                chunkDelays.append(chunkIndex - arrivedChunk[released])
                charDelays.append(fed - arrivedEnd[released])
                released += 1

    for index, chunk in enumerate(chunks):
        fed += len(chunk)
        arrivedEnd.extend([fed] * len(chunk))
        arrivedChunk.extend([index] * len(chunk))
        release(healer.feed(chunk), index)
    release(healer.finish(), len(chunks))
    assert released == fed
    return chunkDelays, charDelays


def percentiles(values: list[int]) -> str:
    """
    @return: p50 / p99 / max, and how many values are not zero.
    """
    ordered = sorted(values)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    held = sum(1 for v in values if v)
    return f"p50 {p50}  p99 {p99}  max {ordered[-1]}  (held: {held} of {len(values)})"


def longCall(rounds: int) -> tuple[int, float, float]:
    """
    One Hermes call whose argument is ~100 KB of code, fed in 4-character chunks.

    @return: chunks, microseconds per chunk, and total milliseconds.
    """
    code = (ROOT / "responses_proxy" / "bridge" / "stream.py").read_text(encoding="utf-8")
    body = code[:100_000]
    text = (
        "Applying the patch.\n<tool_call>\n"
        + json.dumps({"name": "apply_patch", "arguments": {"input": body}})
        + "\n</tool_call>"
    )
    chunks = [text[i : i + 4] for i in range(0, len(text), 4)]
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        healer = TextCallHealer(TOOLS)
        out = []
        for chunk in chunks:
            out.extend(healer.feed(chunk))
        out.extend(healer.finish())
        best = min(best, time.perf_counter() - start)
        calls = [p for p in out if type(p) is CallPiece]
        assert len(calls) == 1 and json.loads(calls[0].arguments)["input"] == body
    return len(chunks), best / len(chunks) * 1e6, best * 1e3


def adversarial() -> list[tuple[str, int, float]]:
    """
    Inputs built to be slow: one long feed full of openers that fail, and values full
    of closing tags that do not end them, fed in 4-character chunks.

    @return: (label, characters, milliseconds) for each.
    """
    results = []
    text = "Use <tool_call>x then. " * 32000
    start = time.perf_counter()
    healer = TextCallHealer(TOOLS)
    out = healer.feed(text) + healer.finish()
    results.append(("one feed, 32000 failed openers", len(text), time.perf_counter() - start))
    assert "".join(p.text for p in out) == text
    body = "<a></parameter>x\n" * 4000
    for label, text in (
        (
            "Qwen value with 4000 inner </parameter>",
            "<tool_call>\n<function=apply_patch>\n<parameter=input>\n"
            + body
            + "\n</parameter>\n</function>\n</tool_call>",
        ),
        (
            "DSML value with 4000 inner </parameter>",
            '<\uff5cDSML\uff5ctool_calls>\n<\uff5cDSML\uff5cinvoke name="apply_patch">\n'
            '<\uff5cDSML\uff5cparameter name="input" string="true">'
            + body
            + "</\uff5cDSML\uff5cparameter>\n</\uff5cDSML\uff5cinvoke>\n"
            "</\uff5cDSML\uff5ctool_calls>",
        ),
    ):
        start = time.perf_counter()
        healer = TextCallHealer(TOOLS)
        out = []
        for i in range(0, len(text), 4):
            out.extend(healer.feed(text[i : i + 4]))
        out.extend(healer.finish())
        results.append((label, len(text), time.perf_counter() - start))
        assert [p for p in out if type(p) is CallPiece][0].name == "apply_patch"
    return [(label, size, seconds * 1e3) for label, size, seconds in results]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    answer = plainAnswer()
    chunks = chunked(answer, 1)
    print(f"plain answer: {len(answer)} characters, {len(chunks)} chunks of 1-8 tokens")
    base, healed = costPerChunk(chunks, rounds)
    print(
        f"(a) cost per chunk: without healer {base:.3f} us, with healer {healed:.3f} us "
        f"(+{healed - base:.3f} us)"
    )
    nearChunks = chunked(NEAR_MISS * 20, 2)
    nearBase, nearHealed = costPerChunk(nearChunks, rounds)
    print(
        f"    near-miss text ({len(nearChunks)} chunks): without {nearBase:.3f} us, "
        f"with {nearHealed:.3f} us"
    )
    for label, pieces in (("plain answer", chunks), ("near-miss text", nearChunks)):
        chunkDelays, charDelays = holdBack(pieces)
        print(f"(b) hold-back, {label}:")
        print(f"    chunks later:     {percentiles(chunkDelays)}")
        print(f"    characters later: {percentiles(charDelays)}")
    count, perChunk, total = longCall(max(1, rounds // 4))
    print(
        f"(c) one call with a 100 KB argument in {count} chunks of 4 characters: "
        f"{perChunk:.2f} us/chunk, {total:.1f} ms in total"
    )
    for label, size, ms in adversarial():
        print(f"(d) {label} ({size} characters): {ms:.0f} ms")


if __name__ == "__main__":
    main()
