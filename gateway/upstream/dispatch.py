"""LiteLLM's synchronous half of an async call, run on the event loop instead of in a worker thread.

`litellm.acompletion` hands its synchronous `completion()` to the loop's default executor on
every call. For a provider LiteLLM reaches asynchronously (the OpenAI SDK's path, the embedded
model) that call only builds the request and returns a coroutine, which is then awaited
on the loop: the thread buys no concurrency (it holds the GIL for all of that work) and
costs a wake-up of a worker, two GIL hand-offs and a wake-up of the loop per call.

`LoopExecutor`, installed as the loop's default executor, runs that one function inline
when the calling client marked the call (`inline_dispatch`); everything else the default
executor runs (DNS lookups, `asyncio.to_thread`, a provider whose `completion` does
blocking I/O) still goes to its threads.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any

import litellm
import litellm.main

# Providers whose `completion(acompletion=True)` returns a coroutine without doing I/O itself. (Not Azure:
# with Entra ID settings in the environment its client setup may fetch a token, synchronously.)
ASYNC_PROVIDERS = frozenset({"openai", "local"})

_INLINE: contextvars.ContextVar[bool] = contextvars.ContextVar("litellm_inline_dispatch", default=False)


@contextmanager
def inline_dispatch(enabled: bool = True) -> Iterator[None]:
    """Within this block, LiteLLM's dispatch of `completion` runs on the loop (when `LoopExecutor` is installed)."""
    token = _INLINE.set(enabled)
    try:
        yield
    finally:
        _INLINE.reset(token)


def is_litellm_dispatch(fn: Callable[..., Any]) -> bool:
    """Whether `fn` is what `litellm.acompletion` hands the executor: `partial(context.run, partial(completion, ...))`
    (`litellm.main.completion`: `litellm.completion` is a wrapper of it)."""
    if not isinstance(fn, partial) or not fn.args:
        return False
    inner = fn.args[0]
    return (getattr(fn.func, "__self__", None).__class__ is contextvars.Context
            and isinstance(inner, partial) and inner.func is litellm.main.completion)


class LoopExecutor(ThreadPoolExecutor):
    """A default executor that runs LiteLLM's marked dispatch inline and everything else in its threads."""

    inline_calls = 0  # how many calls ran inline: tests check that LiteLLM's dispatch is still recognised

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if not (_INLINE.get() and is_litellm_dispatch(fn)):
            return super().submit(fn, *args, **kwargs)
        LoopExecutor.inline_calls += 1
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # as a worker thread would: the awaiting caller re-raises it
            future.set_exception(exc)
        return future


def install() -> None:
    """Make `LoopExecutor` the running loop's default executor (asyncio's loop keeps one it already has)."""
    loop = asyncio.get_running_loop()
    if not isinstance(getattr(loop, "_default_executor", None), LoopExecutor):  # (uvloop does not show it)
        loop.set_default_executor(LoopExecutor(thread_name_prefix="gateway-executor"))


def runs_inline(litellm_model: str, api_base: str | None) -> bool:
    """Whether LiteLLM reaches this model asynchronously, so its dispatch may run on the loop."""
    try:
        provider = litellm.get_llm_provider(model=litellm_model, api_base=api_base)[1]
    except Exception:  # an unknown provider: LiteLLM will say so at the call, in its own words
        return False
    return provider in ASYNC_PROVIDERS
