"""The `timefusion` command: `serve` runs the database and its PostgreSQL port until SIGTERM/SIGINT,
then stops accepting, lets running statements finish, flushes the buffer and exits 0."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from timefusion.config import Config, ConfigError, settings_table

log = logging.getLogger("timefusion")


async def _serve(config: Config) -> int:
    from timefusion.app import StartupError, TimeFusion
    from timefusion.protocol.pgwire.server import PgServer
    from timefusion.write.wal import WalLockedError

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if config.pgwire_password is None:
        log.warning("TIMEFUSION_ALLOW_INSECURE_AUTH=true: PostgreSQL clients connect without a password")
    server = PgServer(
        user=config.pgwire_user,
        password=config.pgwire_password,
        host=config.pgwire_host,
        port=config.pgwire_port,
        max_connections=config.pgwire_max_connections,
        auth_method=config.pgwire_auth,
    )
    try:
        await server.start()  # clients get 57P03 until replay is done
    except OSError as e:
        log.error("cannot listen on %s:%d: %s", config.pgwire_host, config.pgwire_port, e)
        return 1
    # Arrow Flight: listens now and answers UNAVAILABLE until replay is done, like pgwire's 57P03
    from timefusion.protocol.flight import start_flight

    try:
        flight = start_flight(config, server.projects)
    except Exception as e:  # pyarrow reports a busy port as a generic Arrow error
        log.error("cannot start Arrow Flight on %s:%d: %s", config.grpc_host, config.grpc_port, e)
        await server.stop(0)
        return 1
    # -- OTLP receivers (timefusion/protocol/otlp): 503/UNAVAILABLE until attached after replay --
    from timefusion.protocol.otlp import start_otlp

    try:
        otlp = await start_otlp(config)
    except OSError as e:
        log.error("OTLP: %s (set TIMEFUSION_OTLP_ENABLED=false to run without the OTLP receivers)", e)
        await server.stop(0)
        if flight is not None:
            await loop.run_in_executor(None, flight.stop, 5.0)
        return 1
    # -- end OTLP --
    db = TimeFusion(config)
    opening = loop.run_in_executor(None, db.open)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait([opening, stopped], return_when=asyncio.FIRST_COMPLETED)
    try:
        await opening
    except (StartupError, WalLockedError, OSError) as e:
        log.error("%s", e)
        await server.stop(0)
        if flight is not None:
            await loop.run_in_executor(None, flight.stop, 5.0)
        if otlp is not None:  # OTLP
            await otlp.stop(0)
        return 1
    server.attach(db)
    if flight is not None:
        flight.attach(db)
    if otlp is not None:  # OTLP
        otlp.attach(db)
    await stopped
    log.info("shutting down: no new connections; running statements get %.0f s", config.shutdown_grace_secs)
    if flight is not None:
        flight.stopping = True  # refuse new Flight calls and batches while pgwire drains
    await server.stop(config.shutdown_grace_secs)
    flight_stopped = True
    if flight is not None:  # before the final flush: no ack may follow the WAL's close
        flight_stopped = await loop.run_in_executor(None, flight.stop, config.shutdown_grace_secs)
    if otlp is not None:  # OTLP: acknowledged exports are in the WAL; stop before the final flush
        await otlp.stop(config.shutdown_grace_secs)
    log.info("flushing the buffer to storage")
    await loop.run_in_executor(None, db.close)
    log.info("stopped")
    if not flight_stopped:
        # A Flight call is still blocked inside gRPC (e.g. an idle DoPut stream) and would hold the
        # interpreter's exit forever; everything is flushed and the WAL is closed, so exit now.
        logging.shutdown()
        os._exit(0)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="timefusion", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="start the database (configured by environment variables)")
    sub.add_parser("settings", help="print the table of environment variables")
    args = parser.parse_args(argv)
    if args.command == "settings":
        print(settings_table())
        return 0
    try:
        config = Config.from_env()
        config.check_serving()
    except ConfigError as e:
        print(f"timefusion: configuration error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return asyncio.run(_serve(config))


if __name__ == "__main__":
    sys.exit(main())
