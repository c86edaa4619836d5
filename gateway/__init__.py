"""rerank-gateway: an OpenAI-compatible rerank API backed by any chat model."""

__version__ = "0.1.0"

# LiteLLM and tiktoken read their offline switches at import time, so the
# environment is prepared as soon as anything from the package is imported.
from gateway import offline as _offline  # noqa: E402

_offline.configure()
