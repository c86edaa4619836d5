"""`rerank-gateway serve` and friends."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from gateway import __version__
from gateway.config import ConfigError, Settings, load_settings

logger = logging.getLogger("gateway")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rerank-gateway", description=__doc__)
    parser.add_argument("--version", action="version", version=f"rerank-gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--config", default=os.environ.get("RERANK_GATEWAY_CONFIG"),
                       help="config.toml to load (default: $RERANK_GATEWAY_CONFIG, else embedded defaults)")
    serve.add_argument("--host", help="listen address (default: server.host from config)")
    serve.add_argument("--port", type=int, help="listen port (default: server.port from config)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # LiteLLM logs every call at INFO and price-map notes at WARNING; the
    # gateway reports upstream failures itself.
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    try:
        settings = load_settings(args.config)
        return _serve(settings, args.host, args.port, args.log_level)
    except ConfigError as exc:
        print(f"rerank-gateway: {exc}", file=sys.stderr)
        return 2


def _serve(settings: Settings, host: str | None, port: int | None, log_level: str) -> int:
    import uvicorn

    from gateway.app import create_app

    app = create_app(settings)
    service = app.state.service
    host = host or settings.server.host
    port = port if port is not None else settings.server.port
    default = service.models[settings.default_model]
    logger.info(
        "rerank-gateway %s on http://%s:%d: default model %s -> %s (%s), models: %s",
        __version__, host, port, default.alias, default.settings.litellm_model, default.settings.mode,
        ", ".join(service.models),
    )
    reason = default.chat.unavailable_reason()
    if reason:
        logger.warning("the default model cannot be called yet: %s", reason)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
