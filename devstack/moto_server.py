"""moto in server mode, one request at a time, with cheap transaction rollback.

DynamoDB applies each request (a conditional write, a transaction) atomically. moto's threaded
server does not: two concurrent TransactWriteItems can interleave inside moto and even crash it
("dictionary changed size during iteration"). Serializing requests at the server's door gives
the semantics of the real service, while clients still race each other request by request.

moto also deep-copies every table a transaction touches, once per item, so it can roll back:
a create slows down as the table grows (past a second at a few thousand orders). Here the
rollback snapshots only the items the transaction names, which gives the same all-or-nothing
result in time independent of the table's size.

And moto's Query starts from the whole table sorted by its key (Table.all_items), then keeps the
items of the key condition and sorts those again by the key queried: the first sort, of every
item, made each query cost n log n comparisons (160 ms at 8,000 items). Here Query reads the
items unsorted; what it returns is unchanged, since the second sort orders the kept items by
the table's own key too, a total order."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable
from typing import Any

import moto.dynamodb.models as ddb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from devstack import moto_kms


class _OneAtATime:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            return list(self._app(environ, start_response))  # the body is produced inside the lock


class _CopyExceptTables:
    """Replaces the `copy` module inside moto's transact_write_items: tables are not copied
    (the wrapper below snapshots items instead); everything else is copied as before."""

    @staticmethod
    def deepcopy(obj: Any, memo: dict[int, Any] | None = None) -> Any:
        return obj if isinstance(obj, Table) else copy.deepcopy(obj, memo)

    copy = staticmethod(copy.copy)


_moto_transact = DynamoDBBackend.transact_write_items


def _key_of(backend: DynamoDBBackend, op: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    table = backend.tables.get(op.get("TableName", ""))
    if table is None:
        return None
    if "Key" in op:
        return table.name, op["Key"]
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    return table.name, {n: op["Item"][n] for n in names if n in op.get("Item", {})}


def _transact_with_item_rollback(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    snapshot = []
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        if (found := _key_of(self, op)) is None:
            continue
        table_name, key = found
        try:
            current = self.get_item(table_name, key)
        except Exception:  # noqa: S112  (a malformed key: moto itself reports it below)
            continue
        snapshot.append((table_name, key, copy.deepcopy(current.to_json()["Attributes"]) if current else None))
    ddb_models.copy = _CopyExceptTables  # type: ignore[assignment,attr-defined]  # moto's own import of copy
    try:
        _moto_transact(self, transact_items)
    except Exception:
        for table_name, key, attrs in reversed(snapshot):  # put every named item back as it was
            if attrs is None:
                if self.get_item(table_name, key) is not None:
                    self.delete_item(table_name, key)
            else:
                self.put_item(table_name, attrs)
        raise
    finally:
        ddb_models.copy = copy  # type: ignore[attr-defined]  # moto's own import of copy


_moto_query = Table.query


def _unsorted_items(table: Table) -> list[Any]:
    if not table.range_key_attr:
        return list(table.items.values())
    return [item for partition in table.items.values() for item in partition.values()]


def _query_without_sorting_the_table(self: Table, *args: Any, **kwargs: Any) -> Any:
    # Inside moto's query only (requests come one at a time): every other reader of all_items,
    # Scan's pagination among them, still gets the sorted table.
    self.all_items = lambda: _unsorted_items(self)  # type: ignore[method-assign]
    try:
        return _moto_query(self, *args, **kwargs)
    finally:
        del self.all_items


class AtomicMotoServer(ThreadedMotoServer):
    def _server_entry(self) -> None:
        DynamoDBBackend.transact_write_items = _transact_with_item_rollback  # type: ignore[method-assign]
        Table.query = _query_without_sorting_the_table  # type: ignore[method-assign]
        moto_kms.install()  # KMS Sign with MessageType=DIGEST as AWS does it
        app = _OneAtATime(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()
