"""An asyncio echo server on the Protocol API (the streams API adds a coroutine per client)."""

from __future__ import annotations

import asyncio
import signal
import socket

from bench.peers import announce


class EchoProtocol(asyncio.Protocol):
    """data_received -> write; the transport buffers, pause_writing stops our reads."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()

    def eof_received(self) -> bool:
        return False  # close once the write buffer has drained


async def serve_asyncio(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoProtocol, host, port, backlog=socket.SOMAXCONN)
    announce(server.sockets[0], "asyncio")
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with server:
        await stop
