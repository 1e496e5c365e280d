"""
Tests for L{responses_proxy.bridge.state}: what is stored, how references and
C{previous_response_id} resolve, the errors, and the in-memory store's bounds.

The response objects come from the real stream conversion (L{completionToResponse}), and
resolved requests go through the real L{convertRequest}, so the reasoning round trip
(bridge-spec section 3) is checked where the upstream would see it: the chat messages.
"""

from __future__ import annotations

import gc
import json
import secrets
import tracemalloc
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.bridge.completion import completionToResponse
from responses_proxy.bridge.reasoning import encodeReasoning
from responses_proxy.bridge.request import BridgeRequestError, convertRequest
from responses_proxy.bridge.state import (
    Found,
    MemoryStore,
    References,
    ResolvedRequest,
    StoreBounds,
    StoredResponse,
    accountedSize,
    assembleConversation,
    recordFor,
    referencesIn,
    resolve,
)
from responses_proxy.bridge.stream import ResponsesStream
from responses_proxy.redact import StreamRedactor

KEY = b"sk-test-" + b"k" * 40


class _Clock:
    """
    A settable clock.
    """

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def _completion(content: str | None = None, reasoning: str | None = None, calls: Any = None):
    """
    A whole chat completion as a thinking-mode provider (DeepSeek) returns it.
    """
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    if calls is not None:
        message["tool_calls"] = calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if calls else "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    }


class Bridge:
    """
    The glue's sequence over the pure functions and a L{MemoryStore}, with the chat bodies
    that would have gone upstream recorded.
    """

    def __init__(self, store: MemoryStore | None = None) -> None:
        self.store = store if store is not None else MemoryStore(clock=_Clock())
        self.upstream: list[dict[str, Any]] = []
        self.found: list[Found] = []

    def turn(self, request: dict[str, Any], completion: dict[str, Any]) -> dict[str, Any]:
        """
        One request: resolve, convert, reply, store. @return: the response object.
        """
        references = referencesIn(request)
        found = Found()
        if references.needsLookup():
            found = self.store.load(references.previousId, references.itemIds)
        self.found.append(found)
        resolved = resolve(request, references, found)
        conversion = convertRequest(resolved.body, resolved=True)
        self.upstream.append(conversion.body)
        response = completionToResponse(conversion.context, completion)
        record = recordFor(resolved, response)
        if record is not None:
            self.store.save(record)
        return response


def _request(items: Any, **fields: Any) -> dict[str, Any]:
    request = {"model": "deepseek-reasoner", "input": items}
    request.update(fields)
    return request


def _record(
    responseId: str | None = None,
    previousId: str | None = None,
    newInput: tuple[Any, ...] = (),
    output: list[dict[str, Any]] | None = None,
    status: str = "completed",
) -> StoredResponse:
    resolved = ResolvedRequest({}, previousId, True, newInput)
    response = {
        "id": responseId or "resp_" + secrets.token_hex(16),
        "status": status,
        "output": output if output is not None else [],
    }
    record = recordFor(resolved, response)
    assert record is not None
    return record


def _message(text: str, itemId: str | None = None) -> dict[str, Any]:
    return {
        "id": itemId or "msg_" + secrets.token_hex(16),
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


class ReferencesInTests(SynchronousTestCase):
    """
    L{referencesIn}: validation before any I/O, and what to look up.
    """

    def test_nothingToLookUp(self):
        """
        A plain request needs no lookup and is stored by default.
        """
        references = referencesIn(_request("hi"))
        self.assertEqual(references, References(store=True))
        self.assertFalse(references.needsLookup())

    def test_store(self):
        """
        C{store} absent or null is true; false is kept; another type is a 400.
        """
        self.assertTrue(referencesIn(_request("hi", store=None)).store)
        self.assertTrue(referencesIn(_request("hi", store=True)).store)
        self.assertFalse(referencesIn(_request("hi", store=False)).store)
        e = self.assertRaises(BridgeRequestError, referencesIn, _request("hi", store="no"))
        self.assertEqual((e.param, e.code), ("store", "invalid_type"))

    def test_previousResponseId(self):
        """
        A non-empty string is looked up; any other value is a 400 naming the field.
        """
        references = referencesIn(_request("hi", previous_response_id="resp_1"))
        self.assertEqual(references.previousId, "resp_1")
        self.assertTrue(references.needsLookup())
        for bad in ("", 5, ["resp_1"]):
            e = self.assertRaises(
                BridgeRequestError, referencesIn, _request("hi", previous_response_id=bad)
            )
            self.assertEqual((e.param, e.code), ("previous_response_id", "invalid_type"))

    def test_itemReferences(self):
        """
        Typed and typeless references are listed with their input index; each id is
        looked up once.
        """
        references = referencesIn(
            _request(
                [
                    _user("a"),
                    {"type": "item_reference", "id": "msg_1"},
                    {"id": "rs_1"},
                    {"type": "item_reference", "id": "msg_1"},
                ]
            )
        )
        self.assertEqual(references.items, ((1, "msg_1"), (2, "rs_1"), (3, "msg_1")))
        self.assertEqual(references.itemIds, ("msg_1", "rs_1"))

    def test_referenceWithoutId(self):
        """
        A reference without a string id is a 400 naming C{input[i].id}.
        """
        e = self.assertRaises(
            BridgeRequestError, referencesIn, _request([_user("a"), {"type": "item_reference"}])
        )
        self.assertEqual((e.param, e.code), ("input[1].id", "missing_required_parameter"))
        e = self.assertRaises(
            BridgeRequestError, referencesIn, _request([{"type": "item_reference", "id": 3}])
        )
        self.assertEqual((e.param, e.code), ("input[0].id", "invalid_type"))

    def test_notReferences(self):
        """
        Messages (also typeless ones with a role), an item with content but no role, and
        items that are not objects are left to the conversion.
        """
        references = referencesIn(
            _request(
                [
                    {"role": "user", "content": "x", "id": "msg_9"},
                    {"content": "x", "id": "msg_8"},
                    "junk",
                    {"type": "function_call_output", "call_id": "c", "output": "o"},
                ]
            )
        )
        self.assertFalse(references.needsLookup())

    def test_reasoningById(self):
        """
        A reasoning item with an id but no token of ours is looked up (optionally); one
        with our token, or without an id, is not.
        """
        references = referencesIn(
            _request(
                [
                    {"type": "reasoning", "id": "rs_1", "summary": []},
                    {"type": "reasoning", "id": "rs_2", "encrypted_content": "gAAAA-openai"},
                    {"type": "reasoning", "id": "rs_3", "encrypted_content": encodeReasoning("t")},
                    {"type": "reasoning", "summary": []},
                ]
            )
        )
        self.assertEqual(references.reasoning, ((0, "rs_1"), (1, "rs_2")))
        self.assertEqual(references.items, ())


class ResolveTests(SynchronousTestCase):
    """
    L{resolve}: the conversation to convert, or OpenAI's 400s.
    """

    def test_previousNotFound(self):
        """
        An unknown previous response is OpenAI's exact 400 body.
        """
        request = _request("hi", previous_response_id="resp_gone")
        e = self.assertRaises(BridgeRequestError, resolve, request, referencesIn(request), Found())
        self.assertEqual(
            e.errorBody(),
            {
                "error": {
                    "message": "Previous response with id 'resp_gone' not found.",
                    "type": "invalid_request_error",
                    "param": "previous_response_id",
                    "code": "previous_response_not_found",
                }
            },
        )

    def test_overlongIdShortened(self):
        """
        An id in an error message is cut when it is long or not printable.
        """
        request = _request("hi", previous_response_id="resp_" + "x" * 5000 + "\n")
        e = self.assertRaises(BridgeRequestError, resolve, request, referencesIn(request), Found())
        self.assertLess(len(e.message), 200)
        self.assertNotIn("\n", e.message)

    def test_itemNotFound(self):
        """
        An unknown referenced item is a 400 naming C{input[i]} and the id.
        """
        request = _request([_user("a"), {"type": "item_reference", "id": "msg_x"}])
        found = Found(items={})
        e = self.assertRaises(BridgeRequestError, resolve, request, referencesIn(request), found)
        self.assertEqual(e.param, "input[1]")
        self.assertEqual(e.code, None)
        self.assertIn("Item with id 'msg_x' not found", e.message)

    def test_referencesReplacedInPlace(self):
        """
        Each reference becomes the stored item, where it stood; the request is unchanged
        and what is to be stored keeps the reference as an id.
        """
        stored = _message("earlier", "msg_1")
        request = _request([_user("a"), {"type": "item_reference", "id": "msg_1"}, _user("b")])
        before = json.dumps(request)
        resolved = resolve(request, referencesIn(request), Found(items={"msg_1": stored}))
        self.assertEqual(resolved.body["input"], [_user("a"), stored, _user("b")])
        self.assertEqual(resolved.newInput, (_user("a"), "msg_1", _user("b")))
        self.assertEqual(json.dumps(request), before)
        self.assertTrue(resolved.store)

    def test_previousFirst(self):
        """
        The stored conversation comes first, then the new input (a string becomes a user
        message); the request's own fields stay, none are inherited.
        """
        conversation = [_user("a"), _message("b")]
        request = _request("c", previous_response_id="resp_1", instructions="new")
        resolved = resolve(request, referencesIn(request), Found(previous=conversation))
        user = {"type": "message", "role": "user", "content": "c"}
        self.assertEqual(resolved.body["input"], conversation + [user])
        self.assertEqual(resolved.body["instructions"], "new")
        self.assertEqual(resolved.body["previous_response_id"], "resp_1")
        self.assertEqual(resolved.previousId, "resp_1")
        self.assertEqual(resolved.newInput, (user,))

    def test_previousWithoutInput(self):
        """
        With a previous response, C{input} may be left out: the stored conversation alone.
        """
        request = {"model": "m", "previous_response_id": "resp_1"}
        resolved = resolve(request, referencesIn(request), Found(previous=[_user("a")]))
        self.assertEqual(resolved.body["input"], [_user("a")])
        self.assertEqual(resolved.newInput, ())

    def test_badInputLeftToConversion(self):
        """
        A missing or mistyped C{input} is passed on unchanged, for L{convertRequest}'s 400.
        """
        for request in ({"model": "m"}, {"model": "m", "input": 5}):
            resolved = resolve(request, referencesIn(request), Found())
            self.assertEqual(resolved.body, request)
            e = self.assertRaises(BridgeRequestError, convertRequest, resolved.body, resolved=True)
            self.assertEqual(e.param, "input")

    def test_reasoningById(self):
        """
        A reasoning item sent by id without text takes the stored one (with its token);
        when nothing is stored it is used as sent, never a 400.
        """
        stored = {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": "x"}
        bare = {"type": "reasoning", "id": "rs_1", "summary": []}
        other = {"type": "reasoning", "id": "rs_2", "summary": []}
        request = _request([_user("a"), bare, other])
        resolved = resolve(request, referencesIn(request), Found(items={"rs_1": stored}))
        self.assertEqual(resolved.body["input"], [_user("a"), stored, other])
        self.assertEqual(resolved.newInput, (_user("a"), "rs_1", other))


class RecordForTests(SynchronousTestCase):
    """
    L{recordFor}: what is kept of a response.
    """

    def setUp(self):
        self.resolved = ResolvedRequest({}, None, True, (_user("a"), "msg_0"))
        self.output = [_message("b", "msg_1")]

    def test_completedAndIncompleteStored(self):
        """
        Completed and incomplete responses are stored: input (references as ids) then
        output, every item as compact JSON; items with ids are listed.
        """
        for status in ("completed", "incomplete"):
            response = {"id": "resp_1", "status": status, "output": self.output}
            record = recordFor(self.resolved, response)
            assert record is not None
            self.assertEqual(record.responseId, "resp_1")
            self.assertEqual(record.inputCount, 2)
            self.assertEqual(record.entries[1], "msg_0")
            self.assertEqual(json.loads(record.entries[0]), _user("a"))
            self.assertEqual(json.loads(record.entries[2]), self.output[0])
            self.assertEqual(record.itemIds, ((2, "msg_1"),))
            self.assertEqual(
                record.size,
                accountedSize("resp_1", None, record.entries, record.itemIds),
            )

    def test_notStored(self):
        """
        C{store: false}, failed and in-progress responses are not stored.
        """
        response = {"id": "resp_1", "status": "completed", "output": self.output}
        unstored = ResolvedRequest({}, None, False, ())
        self.assertIsNone(recordFor(unstored, response))
        for status in ("failed", "in_progress", "cancelled", None):
            self.assertIsNone(recordFor(self.resolved, dict(response, status=status)))

    def test_keyNeverStored(self):
        """
        With the glue's redactor, a key the upstream echoed into the output does not
        reach the store.
        """
        redactor = StreamRedactor(memoryview(bytearray(KEY)))
        output = [_message("the key is " + KEY.decode() + " and its tail " + KEY[-8:].decode())]
        response = {"id": "resp_1", "status": "completed", "output": output}
        record = recordFor(self.resolved, response, redactor.redact)
        assert record is not None
        for entry in record.entries:
            data = entry.encode() if isinstance(entry, str) else entry
            self.assertNotIn(KEY, data)
            self.assertNotIn(KEY[-8:], data)
        self.assertIn(b"[REDACTED]", record.entries[-1])
        self.assertNotIn(KEY.decode(), repr(record))

    def test_loneSurrogate(self):
        """
        Text with a lone surrogate (valid JSON, not UTF-8) is still stored, and reloads.
        """
        request = json.loads('{"model": "m", "input": "a\\ud800b"}')
        resolved = resolve(request, referencesIn(request), Found())
        record = recordFor(resolved, {"id": "r", "status": "completed", "output": []})
        assert record is not None
        self.assertEqual(json.loads(record.entries[0])["content"], "a\ud800b")


class MemoryStoreTests(SynchronousTestCase):
    """
    L{MemoryStore}: round trips, chains, bounds, expiry, accounting.
    """

    def setUp(self):
        self.clock = _Clock()

    def store(self, **bounds: Any) -> MemoryStore:
        return MemoryStore(StoreBounds(**bounds), self.clock)

    def test_roundTrip(self):
        """
        A stored response's conversation is its input then its output; its items (and
        literal input items with ids) can be looked up by id.
        """
        store = self.store()
        withId = dict(_user("a"), id="msg_in")
        record = _record("resp_1", newInput=(withId,), output=[_message("b", "msg_1")])
        self.assertTrue(store.save(record))
        found = store.load("resp_1", ["msg_1", "msg_in", "msg_none"])
        self.assertEqual(found.previous, [withId, _message("b", "msg_1")])
        self.assertEqual(found.items, {"msg_1": _message("b", "msg_1"), "msg_in": withId})
        self.assertIsNone(store.load("resp_2", []).previous)

    def test_freshObjects(self):
        """
        Loaded items are new objects: changing them changes nothing stored.
        """
        store = self.store()
        store.save(_record("resp_1", output=[_message("b", "msg_1")]))
        store.load("resp_1", ["msg_1"]).items["msg_1"]["content"] = "changed"
        self.assertEqual(store.load(None, ["msg_1"]).items["msg_1"], _message("b", "msg_1"))

    def test_chain(self):
        """
        A chain resolves oldest first through every link, references included; 60 links
        work.
        """
        store = self.store()
        expected: list[dict[str, Any]] = []
        previous = None
        for n in range(60):
            reply = _message(f"answer {n}", f"msg_{n}")
            newInput: tuple[Any, ...] = (_user(f"question {n}"),)
            if n:
                newInput += (f"msg_{n - 1}",)  # also a reference to the last answer
            store.save(_record(f"resp_{n}", previous, newInput, [reply]))
            expected += [_user(f"question {n}")]
            if n:
                expected.append(_message(f"answer {n - 1}", f"msg_{n - 1}"))
            expected.append(reply)
            previous = f"resp_{n}"
        self.assertEqual(store.load("resp_59", []).previous, expected)

    def test_chainThroughEvicted(self):
        """
        When a response in the middle of a chain is gone, the chain is not found (never a
        conversation with a hole).
        """
        store = self.store(maxResponses=3)
        store.save(_record("resp_a", output=[_message("a", "msg_a")]))
        store.save(_record("resp_b", "resp_a", output=[_message("b", "msg_b")]))
        store.save(_record("resp_c", "resp_b"))
        store.save(_record("resp_d"))
        self.assertNotIn("resp_a", store)
        self.assertIn("resp_b", store)
        self.assertIsNone(store.load("resp_c", []).previous)

    def test_referencedItemEvicted(self):
        """
        A stored response whose input referenced an item that is gone is not found either.
        """
        store = self.store(maxResponses=2)
        store.save(_record("resp_b", output=[_message("b", "msg_b")]))
        store.save(_record("resp_x", None, ("msg_b",), [_message("x", "msg_x")]))
        self.assertEqual(store.load("resp_x", []).previous[0], _message("b", "msg_b"))
        store.load(None, ["msg_x"])  # resp_x is now the most recently used
        store.save(_record("resp_y"))
        self.assertEqual((("resp_b" in store), ("resp_x" in store)), (False, True))
        self.assertIsNone(store.load("resp_x", []).previous)

    def test_failedLookupTouchesNothing(self):
        """
        A chain that is not found does not count as a use of the responses on it: they
        stay next in line for eviction.
        """
        store = self.store(maxResponses=3)
        store.save(_record("resp_a"))
        store.save(_record("resp_b", "resp_a"))
        store.save(_record("resp_c", "resp_b"))
        store.save(_record("resp_d"))  # evicts resp_a: the chain of resp_c is broken
        self.assertIsNone(store.load("resp_c", []).previous)
        store.save(_record("resp_e"))
        self.assertEqual([n for n in "bcde" if f"resp_{n}" in store], ["c", "d", "e"])

    def test_lruByUse(self):
        """
        Eviction takes the least recently used: a lookup through a response (as previous,
        or for one of its items) keeps it.
        """
        store = self.store(maxResponses=3)
        for name in "abc":
            store.save(_record(f"resp_{name}", output=[_message(name, f"msg_{name}")]))
        store.load("resp_a", [])
        store.load(None, ["msg_b"])
        store.save(_record("resp_d"))
        self.assertEqual([name for name in "abcd" if f"resp_{name}" in store], ["a", "b", "d"])

    def test_byteBound(self):
        """
        The byte bound evicts as many old responses as needed; a response larger than the
        bound is not stored and evicts nothing.
        """
        sizes = [_record(output=[_message("x" * 1000)]).size]
        store = self.store(maxBytes=sizes[0] * 3)
        ids = []
        for _ in range(5):
            record = _record(output=[_message("x" * 1000)])
            ids.append(record.responseId)
            self.assertTrue(store.save(record))
            self.assertLessEqual(store.totalBytes, sizes[0] * 3)
        self.assertEqual([i for i in ids if i in store], ids[2:])
        big = _record(output=[_message("x" * 10_000)])
        self.assertFalse(store.save(big))
        self.assertEqual(len(store), 3)

    def test_totalBytes(self):
        """
        The total is the sum of the stored responses' sizes, through saves and evictions.
        """
        store = self.store(maxResponses=4)
        records = [_record(output=[_message("x" * n)]) for n in range(0, 700, 100)]
        for record in records:
            store.save(record)
        self.assertEqual(store.totalBytes, sum(r.size for r in records[-4:]))

    def test_ttl(self):
        """
        A response expires C{ttl} seconds after its last use; a use renews it.
        """
        store = self.store(ttl=100)
        store.save(_record("resp_a", output=[_message("a", "msg_a")]))
        store.save(_record("resp_b"))
        self.clock.now += 60
        self.assertIsNotNone(store.load("resp_a", []).previous)
        self.clock.now += 60
        self.assertIsNone(store.load("resp_b", []).previous)
        self.assertNotIn("resp_b", store)
        self.assertEqual(list(store.load(None, ["msg_a"]).items), ["msg_a"])
        self.clock.now += 100
        self.assertEqual(store.load(None, ["msg_a"]).items, {})
        self.assertEqual((len(store), store.totalBytes), (0, 0))

    def test_firstOwnerKeepsId(self):
        """
        An item id keeps pointing at the first response that stored it; a later copy does
        not take it over, and its eviction does not remove the first one's index entry.
        """
        store = self.store(maxResponses=2)
        store.save(_record("resp_1", output=[_message("first", "msg_1")]))
        store.save(_record("resp_2", newInput=(_message("copy", "msg_1"),)))
        self.assertEqual(store.load(None, ["msg_1"]).items["msg_1"]["content"][0]["text"], "first")
        store.load("resp_1", [])
        store.save(_record("resp_3"))  # evicts resp_2
        self.assertIn("msg_1", store.load(None, ["msg_1"]).items)

    def test_resave(self):
        """
        Saving an id again replaces the response (and its accounted bytes).
        """
        store = self.store()
        store.save(_record("resp_1", output=[_message("a" * 100)]))
        second = _record("resp_1", output=[_message("b")])
        store.save(second)
        self.assertEqual((len(store), store.totalBytes), (1, second.size))

    def test_cycleRefused(self):
        """
        A chain that loops (impossible through the API) is not found rather than a hang.
        """
        records = {"a": ("b", ()), "b": ("a", ())}
        self.assertIsNone(assembleConversation("a", records.get, lambda i: None))

    def test_accountingHonest(self):
        """
        The accounted bytes are at least what the store really holds (tracemalloc), and
        not far above it, for small and large responses.
        """
        for text, inputs in ((0, 0), (10, 1), (2000, 5), (20000, 2)):
            gc.collect()
            tracemalloc.start()
            try:
                store = self.store()
                for _ in range(200):
                    store.save(
                        _record(
                            newInput=(_user("q" * text),) * inputs,
                            output=[_message("a" * text)],
                        )
                    )
                gc.collect()
                held = tracemalloc.get_traced_memory()[0]
            finally:
                tracemalloc.stop()
            self.assertGreaterEqual(store.totalBytes, held, (text, inputs))
            self.assertLess(store.totalBytes, held * 1.3, (text, inputs))


class RoundTripTests(SynchronousTestCase):
    """
    Whole conversations as clients send them, checked at the chat body.
    """

    def test_itemReferencesWithReasoning(self):
        """
        The Vercel AI SDK's second turn (earlier reasoning and text as references) reaches
        the upstream as the whole history, with the reasoning as C{reasoning_content}.
        """
        bridge = Bridge()
        first = bridge.turn(
            _request([_user("hi")]), _completion("Hello!", reasoning="The user greets me.")
        )
        reasoningId, messageId = (item["id"] for item in first["output"])
        bridge.turn(
            _request(
                [
                    _user("hi"),
                    {"type": "item_reference", "id": reasoningId},
                    {"type": "item_reference", "id": messageId},
                    _user("how are you?"),
                ]
            ),
            _completion("Fine."),
        )
        self.assertEqual(
            bridge.upstream[1]["messages"],
            [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": "Hello!",
                    "reasoning_content": "The user greets me.",
                },
                {"role": "user", "content": "how are you?"},
            ],
        )

    def test_toolLoopWithReasoning(self):
        """
        A multi-step tool loop: reasoning and text by reference, the call and its output
        inline; the upstream gets one assistant turn with reasoning, text and the call.
        """
        bridge = Bridge()
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
        }
        tools = [{"type": "function", "name": "weather", "parameters": {"type": "object"}}]
        first = bridge.turn(
            _request([_user("weather?")], tools=tools),
            _completion("Let me look.", reasoning="Need the tool.", calls=[call]),
        )
        reasoningId, messageId, _ = (item["id"] for item in first["output"])
        bridge.turn(
            _request(
                [
                    _user("weather?"),
                    {"type": "item_reference", "id": reasoningId},
                    {"type": "item_reference", "id": messageId},
                    {
                        "type": "function_call",
                        "call_id": "call_1",
                        "name": "weather",
                        "arguments": '{"city":"Paris"}',
                    },
                    {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
                ],
                tools=tools,
            ),
            _completion("Sunny."),
        )
        self.assertEqual(
            bridge.upstream[1]["messages"],
            [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": "Let me look.",
                    "reasoning_content": "Need the tool.",
                    "tool_calls": [call],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
        )

    def test_previousResponseChain(self):
        """
        C{previous_response_id} over three turns: the upstream gets the whole history in
        order, reasoning included, and no inherited instructions; each response echoes
        its C{previous_response_id}.
        """
        bridge = Bridge()
        first = bridge.turn(
            _request("one", instructions="Be brief."), _completion("1", reasoning="r1")
        )
        self.assertIsNone(first["previous_response_id"])
        self.assertIs(first["store"], True)
        second = bridge.turn(
            _request("two", previous_response_id=first["id"]), _completion("2", reasoning="r2")
        )
        self.assertEqual(second["previous_response_id"], first["id"])
        bridge.turn(_request("three", previous_response_id=second["id"]), _completion("3"))
        self.assertEqual(
            bridge.upstream[2]["messages"],
            [
                {"role": "user", "content": "one"},
                {"role": "assistant", "content": "1", "reasoning_content": "r1"},
                {"role": "user", "content": "two"},
                {"role": "assistant", "content": "2", "reasoning_content": "r2"},
                {"role": "user", "content": "three"},
            ],
        )
        self.assertEqual(
            bridge.upstream[0]["messages"][0], {"role": "system", "content": "Be brief."}
        )

    def test_everyEventEchoes(self):
        """
        Every response object of a stream (created, in_progress, completed) carries the
        request's C{previous_response_id} and C{store}.
        """
        request = _request("two", previous_response_id="resp_1", store=False)
        references = referencesIn(request)
        resolved = resolve(request, references, Found(previous=[_user("one")]))
        context = convertRequest(resolved.body, resolved=True).context
        stream = ResponsesStream(context)
        data = stream.start() + stream.feedCompletion(_completion("2"))
        responses = [
            json.loads(line[len(b"data: ") :])["response"]
            for line in data.splitlines()
            if line.startswith(b"data: ") and b'"response":' in line
        ]
        self.assertEqual(
            [r["status"] for r in responses], ["in_progress", "in_progress", "completed"]
        )
        for response in responses:
            self.assertEqual(response["previous_response_id"], "resp_1")
            self.assertIs(response["store"], False)

    def test_storeFalseKeepsNothing(self):
        """
        A response made with C{store: false} cannot be continued or referenced.
        """
        bridge = Bridge()
        first = bridge.turn(_request("one", store=False), _completion("1"))
        self.assertEqual(len(bridge.store), 0)
        request = _request("two", previous_response_id=first["id"])
        e = self.assertRaises(BridgeRequestError, bridge.turn, request, _completion("2"))
        self.assertEqual(e.code, "previous_response_not_found")
        self.assertEqual(len(bridge.upstream), 1)

    def test_storeFalseMayReadPrevious(self):
        """
        C{store: false} with a stored previous response reads it and stores nothing new.
        """
        bridge = Bridge()
        first = bridge.turn(_request("one"), _completion("1"))
        bridge.turn(
            _request("two", previous_response_id=first["id"], store=False), _completion("2")
        )
        self.assertEqual(len(bridge.store), 1)
        self.assertEqual(len(bridge.upstream[1]["messages"]), 3)

    def test_failedNotStored(self):
        """
        A failed response (the upstream sent an error) is not stored.
        """
        bridge = Bridge()
        failed = bridge.turn(_request("one"), {"error": {"message": "boom"}})
        self.assertEqual(failed["status"], "failed")
        self.assertEqual(len(bridge.store), 0)
