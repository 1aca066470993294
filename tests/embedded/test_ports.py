"""`mlife up`'s port checks: a port whose last connection sits in TIME_WAIT (for up to a minute after a stop)
is free for a server that binds with SO_REUSEADDR, as uvicorn and nats-server do, so the launcher must not
refuse it; a port someone listens on is still taken."""

from __future__ import annotations

import socket

import pytest

from mlife.launcher import LauncherConfig, free_port, port_is_free


def server_socket() -> socket.socket:
    """A listening socket bound the way uvicorn binds (SO_REUSEADDR)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return s


def port_in_time_wait() -> int:
    """A free port whose server closed its side of a connection first: that side stays in TIME_WAIT."""
    server = server_socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = int(server.getsockname()[1])
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server's side closes first, as a stopped service does
    assert client.recv(1) == b""
    client.close()
    server.close()
    with socket.socket() as plain, pytest.raises(OSError):  # the situation the launcher met: a plain bind fails
        plain.bind(("127.0.0.1", port))
    return port


def test_a_port_in_time_wait_is_free_and_a_server_binds_it() -> None:
    port = port_in_time_wait()
    assert port_is_free(port)
    with server_socket() as again:
        again.bind(("127.0.0.1", port))
        again.listen()


def test_a_listening_port_is_taken() -> None:
    with server_socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert not port_is_free(int(server.getsockname()[1]))


def test_the_launcher_keeps_a_nats_port_in_time_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    port = port_in_time_wait()
    monkeypatch.delenv("MLIFE_NATS_URL", raising=False)
    monkeypatch.setenv("MLIFE_NATS_PORT", str(port))
    monkeypatch.setenv("MLIFE_MLFLOW", "0")
    assert LauncherConfig.from_env(port=free_port()).nats_port == port


def test_a_nats_port_of_zero_means_any_free_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLIFE_NATS_URL", raising=False)
    monkeypatch.setenv("MLIFE_NATS_PORT", "0")  # nats-server would take 0 as its default port, 4222
    monkeypatch.setenv("MLIFE_MLFLOW", "0")
    assert LauncherConfig.from_env(port=free_port()).nats_port > 0
