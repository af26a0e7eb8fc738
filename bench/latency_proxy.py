#!/usr/bin/env python3
"""A TCP proxy that emulates a WAN link: latency_proxy.py --upstream HOST:PORT --rtt-ms 80 --rate-mb 3

This kernel has no netem, so the benchmark's "WAN" condition puts this proxy in front of nginx:
  - every chunk is delivered one-way delay (rtt/2) after it was read, in both directions (a long pipe,
    order kept): a request/response pays one round trip;
  - a new connection pays one more round trip before its first bytes reach the server (the TCP
    handshake the client did not have to wait for, since connecting to this proxy is instant);
  - each connection's server-to-client direction is paced at --rate-mb MB/s (10^6 bytes), in slices
    of 64 KiB. (nginx's own limit_rate is no substitute: it lets the first second's worth of every
    response through at full speed, so files under `rate` bytes are not throttled at all.)
So a request on a kept-alive connection costs rtt + size/rate, on a new connection 2 x rtt + size/rate.
Writes "ready PORT" on stdout once listening (--listen 0 picks a free port). Stops on SIGTERM/SIGINT.
"""
import argparse
import asyncio
import signal
import sys

CHUNK = 1 << 20
SLICE = 64 << 10


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, first_extra: float,
               rate: float = 0.0):
    """Copies reader to writer, each chunk delivered `delay` s after it was read (plus `first_extra` for
    the first chunk), at most `rate` bytes/s when rate > 0. A reader task and a writer task joined by a
    queue keep reading while delivering."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    async def read_side():
        extra = first_extra
        while True:
            data = await reader.read(CHUNK)
            queue.put_nowait((loop.time() + delay + extra, data))
            extra = 0.0
            if not data:
                return

    async def write_side():
        link_free = 0.0  # when the paced link has sent everything written so far
        while True:
            due, data = await queue.get()
            if not data:
                wait = max(due, link_free) - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if writer.can_write_eof():
                    writer.write_eof()
                return
            step = SLICE if rate > 0 else len(data)
            for offset in range(0, len(data), step):
                piece = data[offset:offset + step]
                start = max(due, link_free)
                wait = start - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(piece)
                await writer.drain()
                if rate > 0:
                    link_free = start + len(piece) / rate

    reading = asyncio.ensure_future(read_side())
    try:
        await write_side()
    finally:
        reading.cancel()


async def handle(client_reader, client_writer, upstream_host, upstream_port, one_way, rtt, rate):
    try:
        server_reader, server_writer = await asyncio.open_connection(upstream_host, upstream_port)
    except OSError:
        client_writer.close()
        return
    up = asyncio.ensure_future(pump(client_reader, server_writer, one_way, rtt))
    down = asyncio.ensure_future(pump(server_reader, client_writer, one_way, 0.0, rate))
    try:
        # When either side is done (EOF or reset), wait for the other a little, then close both.
        done, pending = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        if pending:
            await asyncio.wait(pending, timeout=rtt + 5)
    except (ConnectionError, OSError):
        pass
    finally:
        for task in (up, down):
            task.cancel()
        for w in (client_writer, server_writer):
            try:
                w.close()
            except Exception:  # noqa: BLE001 - closing a broken socket
                pass


async def main_async(args) -> int:
    host, _, port = args.upstream.rpartition(":")
    rtt = args.rtt_ms / 1000.0
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, host, int(port), rtt / 2, rtt, args.rate_mb * 1e6), "127.0.0.1", args.listen,
        backlog=1024, limit=CHUNK)
    print("ready %d" % server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, default=0)
    parser.add_argument("--upstream", required=True, help="HOST:PORT")
    parser.add_argument("--rtt-ms", type=float, default=80.0)
    parser.add_argument("--rate-mb", type=float, default=0.0, help="MB/s per connection, server to client (0: unpaced)")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
