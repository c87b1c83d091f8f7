"""The `timefusion` command: `serve` runs the database until SIGTERM/SIGINT, then flushes and exits 0."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from timefusion.config import Config, ConfigError, settings_table


def _serve(config: Config) -> int:
    from timefusion.app import StartupError, TimeFusion
    from timefusion.write.wal import WalLockedError

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        db = TimeFusion(config).open()
    except (StartupError, WalLockedError) as e:
        logging.getLogger("timefusion").error("%s", e)
        return 1
    try:
        stop.wait()
    finally:
        logging.getLogger("timefusion").info("shutting down: flushing the buffer")
        db.close()
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
    except ConfigError as e:
        print(f"timefusion: configuration error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return _serve(config)


if __name__ == "__main__":
    sys.exit(main())
