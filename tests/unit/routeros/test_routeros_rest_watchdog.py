"""The REST watchdog cuts the connection of a request still running at its deadline, and only that one: a
connection already handed to the next request is not cut for the previous request's deadline."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from rds_csi.routeros.rest import _cut, _DeadlineBoundConnection, _Exchange, _Watchdog


@pytest.fixture
def wired() -> Iterator[tuple[_DeadlineBoundConnection, socket.socket]]:
    """A connection whose socket is one end of a pair; the test holds the other end (the "server")."""
    ours, theirs = socket.socketpair()
    connection = _DeadlineBoundConnection("127.0.0.1")
    connection.sock = ours
    yield connection, theirs
    ours.close()
    theirs.close()


def owned(connection: _DeadlineBoundConnection, deadline: float = 0.0) -> _Exchange:
    exchange = _Exchange(deadline)
    exchange.connection, connection.owner = connection, exchange
    return exchange


def cut_seen(peer: socket.socket) -> bool:
    peer.settimeout(5)
    return peer.recv(1) == b""  # the shutdown reaches the other end as end of stream


def test_an_exchange_still_running_at_its_deadline_has_its_connection_cut(
    wired: tuple[_DeadlineBoundConnection, socket.socket],
) -> None:
    connection, peer = wired
    exchange = owned(connection)
    _cut(exchange)
    assert exchange.cut
    assert cut_seen(peer)


def test_a_connection_taken_by_the_next_request_is_not_cut_for_the_previous_deadline(
    wired: tuple[_DeadlineBoundConnection, socket.socket],
) -> None:
    connection, peer = wired
    previous = owned(connection)
    owned(connection)  # the pool handed it on before the previous request could say it was done
    _cut(previous)
    peer.sendall(b"x")
    assert connection.sock is not None and connection.sock.recv(1) == b"x"  # still a working connection


def test_a_finished_exchange_is_never_cut(wired: tuple[_DeadlineBoundConnection, socket.socket]) -> None:
    connection, _ = wired
    exchange = owned(connection)
    _Watchdog.finish(exchange)
    _cut(exchange)
    assert not exchange.cut


def test_the_watchdog_thread_cuts_a_due_exchange(
    wired: tuple[_DeadlineBoundConnection, socket.socket],
) -> None:
    connection, peer = wired
    watchdog = _Watchdog()
    exchange = owned(connection, deadline=time.monotonic())  # already due
    watchdog.watch(exchange)
    assert cut_seen(peer)  # returns once the watchdog thread has cut: no waiting on time
    assert exchange.cut
    watchdog.close()
