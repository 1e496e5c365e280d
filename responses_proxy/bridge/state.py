# -*- test-case-name: tests.test_bridge_state -*-
"""
Responses conversation state for the bridge: C{store}, C{previous_response_id} and
C{item_reference} (bridge-spec section 5), as pure data and pure functions.

Clients that rely on the API's state (the Vercel AI SDK sends earlier assistant items as
C{item_reference}s by default; the OpenAI SDKs and the Agents SDK chain with
C{previous_response_id}) must work against chat providers that keep none. So the bridge
keeps what OpenAI would: every response made with C{store} absent or true, its input and its
output, under its id, and every item under its id.

A stored response is normalised so that long conversations cost linear space: its input is
the new input of its request only (what C{previous_response_id} brought in stays in the
previous response, linked by id), references stay references (the referenced item is held
once, by the response that made it), and every item is kept as its JSON bytes. The bytes are
what the store counts against its bound, so the accounting is close to the real memory (see
L{accountedSize}) and a stored item can never be changed by code that later mutates a
request. A conversation is rebuilt by walking the links and resolving the references; if a
response on the way has been evicted or has expired, the conversation is gone as a whole,
and the client gets the same clear 400 as for an unknown id.

The glue calls, per request: L{referencesIn} (before any I/O: validates and says what to look
up), the store's C{load} (only when L{References} is not empty), L{resolve} (the request to
convert, or a 400), and after the terminal event L{recordFor} and the store's C{save}.
L{MemoryStore} is the in-memory store; the SQLite store in L{responses_proxy.web.store}
shares L{assembleConversation} with it, so both resolve exactly alike.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Union

import attrs

from responses_proxy.bridge.reasoning import decodeReasoning
from responses_proxy.bridge.request import BridgeRequestError, isItemReference

__all__ = [
    "STORED_STATUSES",
    "Entry",
    "Found",
    "MemoryStore",
    "References",
    "ResolvedRequest",
    "StoreBounds",
    "StoredResponse",
    "accountedSize",
    "assembleConversation",
    "decodeItems",
    "previousNotFound",
    "recordFor",
    "referencesIn",
    "resolve",
]

# Terminal statuses whose response is stored. A failed response is not: its output may
# miss half-received items and the client did not accept the turn (it retries from the
# response before it), so continuing from it would feed the model a turn nobody saw.
STORED_STATUSES = frozenset({"completed", "incomplete"})

# One entry of a stored response, in order: an item's JSON bytes, or (a str) the id of an
# item held by a stored response (the client sent an item_reference, or a reasoning item
# by id).
Entry = Union[bytes, str]

# Accounted bytes beyond the JSON itself, measured with tracemalloc on CPython 3.11 for
# MemoryStore (bench/bench_store.py prints the measured figure next to the accounted one):
# per response (record object, slot, LRU entry, id strings' headers), per entry (a bytes
# or str object and its tuple slot) and per indexed item id (the index entry, its id
# string's header and the (owner, position) tuple).
_PER_RESPONSE = 400
_PER_ENTRY = 48
_PER_ITEM = 200


@attrs.frozen
class StoreBounds:
    """
    What the store may hold; whichever bound is reached first evicts the least recently
    used responses. A response is "used" when it is saved and whenever a lookup goes
    through it (a C{previous_response_id} chain, an item reference to one of its items).

    @ivar maxResponses: the most responses kept.
    @ivar maxBytes: the most bytes kept (L{accountedSize} summed); a single response
        larger than this is not stored at all.
    @ivar ttl: seconds after its last use when a response expires.
    """

    maxResponses: int = 10_000
    maxBytes: int = 256 * 1024 * 1024
    ttl: float = 30 * 24 * 3600.0


@attrs.frozen
class StoredResponse:
    """
    One stored response, as both stores keep it.

    @ivar responseId: its C{resp_...} id.
    @ivar previousId: the C{previous_response_id} it was made with, or L{None}.
    @ivar entries: its new input items, then its output items (see L{Entry}).
    @ivar inputCount: how many of C{entries} are input.
    @ivar itemIds: C{(position in entries, id)} of each literal item that carries an id:
        these items can be referenced (the first response to store an id keeps it).
    @ivar size: the accounted bytes (L{accountedSize}).
    """

    responseId: str
    previousId: str | None
    entries: tuple[Entry, ...]
    inputCount: int
    itemIds: tuple[tuple[int, str], ...]
    size: int


def accountedSize(
    responseId: str,
    previousId: str | None,
    entries: Iterable[Entry],
    itemIds: Iterable[tuple[int, str]],
) -> int:
    """
    The bytes a stored response counts against L{StoreBounds.maxBytes}: its JSON bytes and
    ids plus measured per-object overheads, so that the bound is about real memory.
    """
    size = _PER_RESPONSE + len(responseId) + (len(previousId) if previousId else 0)
    for entry in entries:
        size += _PER_ENTRY + len(entry)
    for _, itemId in itemIds:
        size += _PER_ITEM + len(itemId)
    return size


@attrs.frozen
class References:
    """
    What a request asks the store for (L{referencesIn}).

    @ivar previousId: its C{previous_response_id}, or L{None}.
    @ivar items: C{(input index, id)} of each C{item_reference}; an unknown id is a 400.
    @ivar reasoning: C{(input index, id)} of each reasoning item that carries an id but no
        reasoning token of this bridge: the stored item, when there is one, supplies its
        text (bridge-spec section 3); when there is none, the item is used as it is.
    @ivar store: whether the response to this request is to be stored.
    """

    previousId: str | None = None
    items: tuple[tuple[int, str], ...] = ()
    reasoning: tuple[tuple[int, str], ...] = ()
    store: bool = True

    @property
    def itemIds(self) -> tuple[str, ...]:
        """
        Every item id to look up, each once, in input order.
        """
        return tuple(dict.fromkeys(i for _, i in sorted(self.items + self.reasoning)))

    def needsLookup(self) -> bool:
        """
        Whether the store must be asked at all (most requests: no).
        """
        return self.previousId is not None or bool(self.items) or bool(self.reasoning)


@attrs.frozen
class Found:
    """
    What the store found for some L{References}: fresh objects, the caller's to keep.

    @ivar previous: the conversation of C{previousId} (its input, with what came before
        it, then its output), or L{None} when it is unknown, expired or incomplete.
    @ivar items: item id -> item, for the ids that were found.
    """

    previous: list[dict[str, Any]] | None = None
    items: Mapping[str, dict[str, Any]] = attrs.field(factory=dict)


@attrs.frozen
class ResolvedRequest:
    """
    A request with its state resolved (L{resolve}).

    @ivar body: the request to hand to C{convertRequest(body, resolved=True)}: its
        C{input} is the whole conversation, references replaced; every other field as
        sent (C{previous_response_id} included, for the response object to echo).
    @ivar previousId: the C{previous_response_id}, or L{None}.
    @ivar store: whether the response is to be stored.
    @ivar newInput: this request's own input as it is to be stored: an item, or the id of
        a stored item it referenced.
    """

    body: dict[str, Any]
    previousId: str | None
    store: bool
    newInput: tuple[dict[str, Any] | str, ...]


# -- errors -------------------------------------------------------------------------------


def previousNotFound(previousId: str) -> BridgeRequestError:
    """
    OpenAI's own 400 for an unknown, expired or unstored C{previous_response_id}.
    """
    return BridgeRequestError(
        f"Previous response with id '{_shown(previousId)}' not found.",
        param="previous_response_id",
        code="previous_response_not_found",
    )


def _itemNotFound(index: int, itemId: str) -> BridgeRequestError:
    return BridgeRequestError(
        f"Item with id '{_shown(itemId)}' not found (input[{index}]). This proxy keeps "
        "items of responses made with 'store' absent or true, until they expire or are "
        "evicted; send the item itself instead.",
        param=f"input[{index}]",
        code=None,
    )


def _shown(value: str) -> str:
    """
    An id as it may appear in an error message: ids are short and printable; anything
    else is cut, so a client cannot make the proxy echo arbitrary text at length.
    """
    if len(value) <= 128 and value.isprintable():
        return value
    return value[:64].encode("ascii", "backslashreplace").decode("ascii") + "..."


# -- the request side ---------------------------------------------------------------------


def referencesIn(request: Mapping[str, Any]) -> References:
    """
    Validate a request's state fields and list what to look up. Pure and cheap: the glue
    calls it before any I/O, and skips the store when nothing is referenced.

    @param request: the parsed request body.
    @raise BridgeRequestError: C{store} is not a boolean, C{previous_response_id} not a
        non-empty string, or an item reference has no string C{id}.
    """
    store = request.get("store")
    if store is None:
        store = True
    elif not isinstance(store, bool):
        raise BridgeRequestError("'store' must be a boolean.", param="store", code="invalid_type")
    previousId = request.get("previous_response_id")
    if previousId is not None and (not isinstance(previousId, str) or not previousId):
        raise BridgeRequestError(
            "'previous_response_id' must be a non-empty string.",
            param="previous_response_id",
            code="invalid_type",
        )
    items: list[tuple[int, str]] = []
    reasoning: list[tuple[int, str]] = []
    value = request.get("input")
    if isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, Mapping):
                continue  # convertRequest names it
            if isItemReference(item):
                itemId = item.get("id")
                if not isinstance(itemId, str) or not itemId:
                    raise BridgeRequestError(
                        f"'input[{i}].id' must be a non-empty string (the id of a stored item).",
                        param=f"input[{i}].id",
                        code="invalid_type" if itemId is not None else "missing_required_parameter",
                    )
                items.append((i, itemId))
            elif item.get("type") == "reasoning":
                itemId = item.get("id")
                if (
                    isinstance(itemId, str)
                    and itemId
                    and decodeReasoning(item.get("encrypted_content")) is None
                ):
                    reasoning.append((i, itemId))
    return References(
        previousId=previousId, items=tuple(items), reasoning=tuple(reasoning), store=store
    )


def resolve(request: Mapping[str, Any], references: References, found: Found) -> ResolvedRequest:
    """
    Put the stored conversation first and replace references by the stored items.

    @param request: the parsed request body (not changed).
    @param references: L{referencesIn} of it.
    @param found: what the store found for C{references} (an empty L{Found} when
        nothing was looked up).
    @return: the request to convert, and what to store of its input.
    @raise BridgeRequestError: the previous response or a referenced item is unknown
        (OpenAI's bodies; nothing must go upstream).
    """
    previous: list[dict[str, Any]] = []
    if references.previousId is not None:
        if found.previous is None:
            raise previousNotFound(references.previousId)
        previous = found.previous
    for index, itemId in references.items:
        if itemId not in found.items:
            raise _itemNotFound(index, itemId)

    body = dict(request)
    value = request.get("input")
    newInput: list[dict[str, Any] | str] = []
    items: list[Any]
    if isinstance(value, str):
        message = {"type": "message", "role": "user", "content": value}
        newInput.append(message)
        items = [message]
    elif isinstance(value, list):
        replaced = {index: itemId for index, itemId in references.items}
        for index, itemId in references.reasoning:
            if itemId in found.items:
                replaced[index] = itemId
        items = []
        for i, item in enumerate(value):
            itemId = replaced.get(i)
            if itemId is None:
                newInput.append(item)
                items.append(item)
            else:
                newInput.append(itemId)
                items.append(found.items[itemId])
    elif value is None and references.previousId is not None:
        items = []  # continue from the stored conversation alone
    else:
        # No input, or one of a wrong type: convertRequest refuses it with its own 400.
        return ResolvedRequest(body, references.previousId, references.store, ())
    body["input"] = previous + items if previous else items
    return ResolvedRequest(body, references.previousId, references.store, tuple(newInput))


# -- the response side --------------------------------------------------------------------


def _encode(item: Any) -> bytes:
    """
    Compact JSON bytes of one item; strings with lone surrogates (valid in JSON text, not
    in UTF-8) fall back to ASCII escapes.
    """
    try:
        return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(item, separators=(",", ":")).encode("ascii")


def recordFor(
    resolved: ResolvedRequest,
    response: Mapping[str, Any],
    redact: Callable[[bytes], bytes] | None = None,
) -> StoredResponse | None:
    """
    What to store once a response has its terminal object.

    @param resolved: the request's L{ResolvedRequest}.
    @param response: the response object of the terminal event (or of a C{stream: false}
        reply).
    @param redact: applied to every item's JSON bytes (the glue passes its key redactor:
        an upstream that echoes the key must not get it into the store).
    @return: the record, or L{None} when nothing is to be stored (C{store: false}, or a
        status not in L{STORED_STATUSES}).
    """
    if not resolved.store or response.get("status") not in STORED_STATUSES:
        return None
    responseId = response.get("id")
    if not isinstance(responseId, str) or not responseId:
        return None
    entries: list[Entry] = []
    itemIds: list[tuple[int, str]] = []

    def literal(item: Any) -> None:
        data = _encode(item)
        if redact is not None:
            data = redact(data)
        if isinstance(item, Mapping):
            itemId = item.get("id")
            if isinstance(itemId, str) and itemId:
                itemIds.append((len(entries), itemId))
        entries.append(data)

    for entry in resolved.newInput:
        if isinstance(entry, str):
            entries.append(entry)
        else:
            literal(entry)
    inputCount = len(entries)
    output = response.get("output")
    if isinstance(output, list):
        for item in output:
            literal(item)
    return StoredResponse(
        responseId=responseId,
        previousId=resolved.previousId,
        entries=tuple(entries),
        inputCount=inputCount,
        itemIds=tuple(itemIds),
        size=accountedSize(responseId, resolved.previousId, entries, itemIds),
    )


# -- shared by both stores ----------------------------------------------------------------


def assembleConversation(
    previousId: str,
    getRecord: Callable[[str], tuple[str | None, Iterable[Any]] | None],
    getItem: Callable[[str], Any | None],
) -> list[Any] | None:
    """
    The conversation of a stored response, oldest first: each response of its chain
    contributes its input and its output, references resolved.

    @param getRecord: response id -> C{(previousId, entries)}, or L{None} when it is not
        stored (or expired); it may note the response as used. An entry that is a C{str}
        is a reference; anything else is an item (as the store keeps it: JSON bytes in
        memory, decoded in SQLite) and is passed through.
    @param getItem: item id -> the item, or L{None}; it may note the owner as used.
    @return: the items, or L{None} when any response or item on the way is missing.
    """
    chain: list[Iterable[Any]] = []
    seen: set[str] = set()
    current: str | None = previousId
    while current is not None:
        if current in seen:
            return None  # a cycle cannot be made through the API; refuse, never loop
        seen.add(current)
        found = getRecord(current)
        if found is None:
            return None
        current, entries = found
        chain.append(entries)
    out: list[Any] = []
    for entries in reversed(chain):
        for entry in entries:
            if isinstance(entry, str):
                item = getItem(entry)
                if item is None:
                    return None
                out.append(item)
            else:
                out.append(entry)
    return out


def decodeItems(parts: list[bytes]) -> list[dict[str, Any]]:
    """
    Decode stored item JSON in one pass (fresh objects each time).
    """
    if not parts:
        return []
    return json.loads(b"[" + b",".join(parts) + b"]")


# -- the in-memory store ------------------------------------------------------------------


class _Slot:
    __slots__ = ("record", "used")

    def __init__(self, record: StoredResponse, used: float) -> None:
        self.record = record
        self.used = used


class MemoryStore:
    """
    The default store: in this process's memory, bounded (L{StoreBounds}), least recently
    used evicted first, each response expiring C{ttl} seconds after its last use.

    @ivar totalBytes: the accounted bytes held.
    """

    def __init__(
        self, bounds: StoreBounds | None = None, clock: Callable[[], float] | None = None
    ) -> None:
        """
        @param bounds: the limits; the documented defaults when L{None}.
        @param clock: seconds, wall clock (the time limit survives nothing else, but the
            SQLite store's does); C{time.time} when L{None}.
        """
        if clock is None:
            import time

            clock = time.time
        self.bounds = bounds if bounds is not None else StoreBounds()
        self._clock = clock
        # LRU order: least recently used first.
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        # item id -> (owning response id, position in its entries)
        self._items: dict[str, tuple[str, int]] = {}
        self.totalBytes = 0

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, responseId: object) -> bool:
        return responseId in self._slots

    def save(self, record: StoredResponse) -> bool:
        """
        Keep a response, evicting the least recently used ones beyond the bounds.

        @return: whether it was stored (a response larger than C{maxBytes} is not).
        """
        now = self._clock()
        self._expire(now)
        bounds = self.bounds
        if record.size > bounds.maxBytes or bounds.maxResponses < 1:
            return False
        if record.responseId in self._slots:
            self._remove(record.responseId)
        self._slots[record.responseId] = _Slot(record, now)
        self.totalBytes += record.size
        for position, itemId in record.itemIds:
            self._items.setdefault(itemId, (record.responseId, position))
        while len(self._slots) > bounds.maxResponses or self.totalBytes > bounds.maxBytes:
            self._remove(next(iter(self._slots)))
        return True

    def load(self, previousId: str | None, itemIds: Iterable[str]) -> Found:
        """
        Look up a conversation and items; what is found is noted as used.
        """
        now = self._clock()
        self._expire(now)
        used: list[str] = []

        def getRecord(responseId: str) -> tuple[str | None, Iterable[Entry]] | None:
            slot = self._slots.get(responseId)
            if slot is None:
                return None
            used.append(responseId)
            return slot.record.previousId, slot.record.entries

        def getItem(itemId: str) -> bytes | None:
            where = self._items.get(itemId)
            if where is None:
                return None
            owner, position = where
            used.append(owner)
            entry = self._slots[owner].record.entries[position]
            assert isinstance(entry, bytes)
            return entry

        previous = None
        if previousId is not None:
            parts = assembleConversation(previousId, getRecord, getItem)
            if parts is None:
                del used[:]  # a broken chain is no use of the responses on it
            else:
                previous = decodeItems(parts)
        ids = []
        parts = []
        for itemId in itemIds:
            data = getItem(itemId)
            if data is not None:
                ids.append(itemId)
                parts.append(data)
        items = dict(zip(ids, decodeItems(parts), strict=True))
        for responseId in used:
            slot = self._slots[responseId]
            slot.used = now
            self._slots.move_to_end(responseId)
        return Found(previous=previous, items=items)

    def _expire(self, now: float) -> None:
        ttl = self.bounds.ttl
        slots = self._slots
        while slots:
            responseId, slot = next(iter(slots.items()))
            if slot.used + ttl > now:
                break
            self._remove(responseId)

    def _remove(self, responseId: str) -> None:
        slot = self._slots.pop(responseId)
        self.totalBytes -= slot.record.size
        for _, itemId in slot.record.itemIds:
            where = self._items.get(itemId)
            if where is not None and where[0] == responseId:
                del self._items[itemId]
