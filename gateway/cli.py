"""`rerank-gateway serve | check-config | hash-key | new-key`."""

from __future__ import annotations

import argparse
import json
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
                       help="config file to load (default: $RERANK_GATEWAY_CONFIG, else ./config.toml when it "
                            "exists, else the embedded defaults)")
    serve.add_argument("--host", help="listen address (default: server.host from config)")
    serve.add_argument("--port", type=int, help="listen port (default: server.port from config)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="worker processes on the one port (default 1; share state through Redis)")
    check = commands.add_parser("check-config", help="validate a config file without serving")
    check.add_argument("path")
    hash_key = commands.add_parser("hash-key", help="print the sha256 of an API key for [[auth.keys]]")
    hash_key.add_argument("key", nargs="?", help="the key (default: read from stdin)")
    make_key = commands.add_parser("new-key", help="generate an API key; print it and its [auth] keys entry")
    make_key.add_argument("--name", default="my-app", help="the key's name in config and logs (default: my-app)")
    args = parser.parse_args(argv)
    configure_logging(args.log_level if args.command == "serve" else "warning")
    try:
        if args.command == "serve":
            if args.workers < 1:
                parser.error("--workers must be at least 1")
            return _serve(args.config, args.host, args.port, args.log_level, args.workers)
        if args.command == "check-config":
            return _check(Path(args.path))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"rerank-gateway: {problem}", file=sys.stderr)
        return 2
    from gateway.ops.auth import hash_key as digest
    from gateway.ops.auth import new_key

    if args.command == "hash-key":
        key = args.key if args.key is not None else sys.stdin.readline().strip()
        if not key.strip():
            # The hash of "" is a valid-looking entry that any client sending an empty bearer could match.
            print("rerank-gateway: hash-key: the key is empty; pass a key (or pipe one on stdin)", file=sys.stderr)
            return 2
        print(digest(key))
    else:
        key = new_key()
        print(f"key:    {key}\nsha256: {digest(key)}\n"
              f"# give the key to the client; paste this line into keys = [...] under [auth] in config.toml:\n"
              f"{{name = {json.dumps(args.name)}, sha256 = \"{digest(key)}\"}},")
    return 0


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # A line per request: skip the record fields no format here shows (the caller's file and line,
    # found by walking the stack; thread and process names). Python's logging docs' own advice.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    # LiteLLM logs every call at INFO and price-map notes at WARNING; the
    # gateway reports upstream failures itself.
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    # watchfiles logs every batch of changes it sees at INFO; the reload log says what mattered.
    logging.getLogger("watchfiles").setLevel(logging.WARNING)


def _check(path: Path) -> int:
    """Every problem in one pass: the schema, the prompt files, and whether a default model can be called."""
    import hashlib

    from gateway.config import read_toml, validate_settings
    from gateway.service import RerankService
    from gateway.strategies.prompts import default_prompts_dir, load_prompts

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    data = read_toml(raw, path)
    settings, problems = validate_settings(data, path)
    prompts_dir = data.get("prompts_dir") if settings is None else settings.prompts_dir
    prompts_dir = path.parent / prompts_dir if isinstance(prompts_dir, str) else default_prompts_dir()
    try:
        load_prompts(prompts_dir)
    except ConfigError as exc:
        problems += exc.problems
    warnings: list[str] = []
    service = None
    if settings is not None and not problems:
        try:
            service = RerankService.from_settings(settings)
        except ConfigError as exc:
            problems += [f"{path}: {problem}" for problem in exc.problems]
        else:
            errors, warnings = service.availability_problems()
            problems += [f"{path}: {error}" for error in errors]
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    for line in problems:
        print(f"rerank-gateway: {line}", file=sys.stderr)
    if problems or service is None:
        print(f"{path}: {len(problems)} problem{'s' if len(problems) != 1 else ''}", file=sys.stderr)
        return 2
    digest = hashlib.sha256(raw).hexdigest()[:16]
    print(f"{path}: ok (hash {digest}, default model {service.default_alias}, models: {', '.join(service.models)})")
    return 0


def config_path(given: str | None) -> Path | None:
    """The file `serve` loads: the one given, else ./config.toml when it exists, else None (embedded)."""
    if given:
        return Path(given)
    local = Path("config.toml")
    return local if local.is_file() else None


def _serve(config: str | None, host: str | None, port: int | None, log_level: str, workers: int = 1) -> int:
    path = config_path(config)
    if workers > 1:
        from gateway.ops.reload import read_config
        from gateway.supervisor import run

        server = read_config(path)[0].server
        return run(str(path) if path else None, host or server.host, port if port is not None else server.port,
                   log_level, workers)
    from gateway.app import build_gateway
    from gateway.server import run

    gateway = build_gateway(path)
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
    if path is None:
        logger.info("config: the embedded defaults (no --config, $RERANK_GATEWAY_CONFIG or ./config.toml)")
    else:
        watching = "watched for changes" if settings.server.watch_config else "reload with SIGHUP or /admin/reload"
        logger.info("config: %s (%s)", path.resolve(), watching)
    reason = default.chat.unavailable_reason()
    if reason:
        logger.warning("the default model cannot be called yet: %s", reason)
    elif default.settings.embedded:
        logger.warning(
            "answers come from the embedded demo model %s: it works offline with no key, but ranks about as "
            "well as BM25 on TREC DL, no better (each answer's meta.warnings says so too); set OPENAI_API_KEY "
            "or OPENAI_BASE_URL, or configure a hosted model in config.toml, for real rankings",
            default.settings.litellm_model)
    run(gateway, host, port, log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
