"""`rerank-gateway serve | check-config | hash-key | new-key`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from gateway import __version__
from gateway.config import ConfigError

logger = logging.getLogger("gateway")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rerank-gateway", description="An LLM-backed rerank API.")
    parser.add_argument("--version", action="version", version=f"rerank-gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--config", default=os.environ.get("RERANK_GATEWAY_CONFIG"),
                       help="config.toml to load (default: $RERANK_GATEWAY_CONFIG, else embedded defaults)")
    serve.add_argument("--host", help="listen address (default: server.host from config)")
    serve.add_argument("--port", type=int, help="listen port (default: server.port from config)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    check = commands.add_parser("check-config", help="validate a config file without serving")
    check.add_argument("path")
    hash_key = commands.add_parser("hash-key", help="print the sha256 of an API key for [[auth.keys]]")
    hash_key.add_argument("key", nargs="?", help="the key (default: read from stdin)")
    commands.add_parser("new-key", help="generate an API key and print it with its sha256")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper() if args.command == "serve" else "WARNING",
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # LiteLLM logs every call at INFO and price-map notes at WARNING; the
    # gateway reports upstream failures itself.
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    # watchfiles logs every batch of changes it sees at INFO; the reload log says what mattered.
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    try:
        if args.command == "serve":
            return _serve(args.config, args.host, args.port, args.log_level)
        if args.command == "check-config":
            return _check(Path(args.path))
    except ConfigError as exc:
        print(f"rerank-gateway: {exc}", file=sys.stderr)
        return 2
    from gateway.ops.auth import hash_key as digest
    from gateway.ops.auth import new_key

    if args.command == "hash-key":
        key = args.key if args.key is not None else sys.stdin.readline().strip()
        print(digest(key))
    else:
        key = new_key()
        print(f"key:    {key}\nsha256: {digest(key)}")
    return 0


def _check(path: Path) -> int:
    from gateway.ops.reload import read_config
    from gateway.service import RerankService

    settings, digest = read_config(path)
    service = RerankService.from_settings(settings)
    errors, warnings = service.availability_problems()
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    for line in errors:
        print(f"rerank-gateway: {path}: {line}", file=sys.stderr)
    if errors:
        return 2
    print(f"{path}: ok (hash {digest}, default model {service.default_alias}, models: {', '.join(service.models)})")
    return 0


def _serve(config: str | None, host: str | None, port: int | None, log_level: str) -> int:
    from gateway.app import build_gateway
    from gateway.server import serve

    gateway = build_gateway(Path(config) if config else None)
    generation = gateway.holder.current
    settings, service = generation.settings, generation.service
    host = host or settings.server.host
    port = port if port is not None else settings.server.port
    if settings.server.admin_port and port == settings.server.admin_port:
        raise ConfigError(f"--port {port} is also server.admin_port: the admin endpoints need a port of their own")
    default = service.models[service.default_alias]
    passed_over = [
        f"{alias} cannot be called: {service.models[alias].chat.unavailable_reason()}"
        for alias in settings.default_candidates[: settings.default_candidates.index(default.alias)]
    ]
    logger.info(
        "rerank-gateway %s on http://%s:%d: default model %s -> %s (%s)%s; models: %s",
        __version__, host, port, default.alias, default.settings.litellm_model, default.settings.mode,
        f" because {'; '.join(passed_over)}" if passed_over else "", ", ".join(service.models),
    )
    reason = default.chat.unavailable_reason()
    if reason:
        logger.warning("the default model cannot be called yet: %s", reason)
    asyncio.run(serve(gateway, host, port, log_level))
    return 0


if __name__ == "__main__":
    sys.exit(main())
