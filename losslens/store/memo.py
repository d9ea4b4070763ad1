"""What a Datasette page, spec or data route read from the catalog, remembered until the catalog changes.

A page read again (a reload, the back button, a second reader, the global page's setting picker
asking for the same taxonomy spec) costs a dictionary lookup instead of its queries. The catalog's
version is SQLite's data version (:func:`losslens.store.queries.data_version`): on one connection it changes whenever any other
connection, in this process or another (``losslens compute`` storing results beside a running
``losslens serve``), commits. That value means something only on the connection that read it, and
Datasette reads through one connection per thread, so each connection has its own memo.

The memo is keyed on ``id(conn)``; the plugin's ``prepare_connection`` hook gives every new Datasette
connection an empty one (:func:`reset`), and the memo holds its connection, so no other object can get that id
while the memo exists (at most :data:`MAX_CONNECTIONS` are held). Any other connection (the exports, the CLI, tests) has none, and :func:`remembered` then just reads:
so view code may remember experiment-wide reads through it without knowing who is asking. Only values that
the callers never mutate may be remembered (page contexts, serialised specs and rows).
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TypeVar, cast

from losslens.store import queries

T = TypeVar("T")

MAX_ENTRIES = 64  # pages and specs remembered per connection (least recently used dropped first)
MAX_CONNECTIONS = 32  # connections with a memo (Datasette opens a few per database; tests open many)


@dataclass
class _Memo:
    # The connection itself, held so that its id cannot be reused while this memo exists: Python gives a closed
    # and collected connection's id to the next object, and a plain connection opened then (an export after a
    # server in one process) would find this memo, at the same version (every fresh connection reads 1).
    conn: sqlite3.Connection
    version: int | None = None
    entries: OrderedDict[Hashable, object] = field(default_factory=OrderedDict)


_memos: OrderedDict[int, _Memo] = OrderedDict()
_lock = threading.Lock()  # guards _memos; each _Memo is used only by its connection's thread


def reset(conn: sqlite3.Connection) -> None:
    """Give ``conn`` (just opened) an empty memo, dropping the oldest connection's beyond :data:`MAX_CONNECTIONS`."""
    with _lock:
        _memos[id(conn)] = _Memo(conn)
        _memos.move_to_end(id(conn))
        while len(_memos) > MAX_CONNECTIONS:
            _memos.popitem(last=False)


def remembered(
    conn: sqlite3.Connection,
    key: Hashable,
    read: Callable[[sqlite3.Connection], T],
    keep: Callable[[T], bool] | None = None,
) -> T:
    """``read(conn)``, or what it returned for ``key`` on this connection at the catalog's current version.

    Exceptions (a 404 for an unknown id) are not remembered, nor a value ``keep`` refuses (a large response), nor
    a value read while another connection committed (the version read after ``read`` differs from the one
    before). A connection that :func:`reset` never saw (not opened by Datasette) always reads."""
    memo = _memos.get(id(conn))
    if memo is None or memo.conn is not conn:
        return read(conn)
    version = queries.data_version(conn)
    if memo.version != version:
        memo.entries.clear()
        memo.version = version
    if key in memo.entries:
        memo.entries.move_to_end(key)
        return cast(T, memo.entries[key])
    value = read(conn)
    if queries.data_version(conn) != version:
        # Another connection committed while ``read`` ran: part of the value may come from before that commit
        # (a nested read of a shared part has already moved the memo to the new version), so remembering it
        # would serve the older part until the next commit. Answer it this once only.
        return value
    if keep is not None and not keep(value):
        return value
    memo.entries[key] = value
    if len(memo.entries) > MAX_ENTRIES:
        memo.entries.popitem(last=False)
    return value
