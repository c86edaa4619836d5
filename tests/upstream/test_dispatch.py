"""LiteLLM's dispatch runs on the event loop for async providers; everything else the loop's executor runs stays
in its threads."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from functools import partial

import litellm.main
import pytest

from gateway.app import create_app
from gateway.config import ModelSettings
from gateway.upstream import dispatch
from gateway.upstream.chat import ChatRequest
from gateway.upstream.litellm_client import LiteLLMChatClient
from tests.support.fake_upstream import FakeUpstream

MESSAGES = [{"role": "system", "content": "Rate."},
            {"role": "user", "content": "Query: q\n\n<passage>\nParis is the capital of France\n</passage>"}]


def openai_client(upstream: FakeUpstream) -> LiteLLMChatClient:
    return LiteLLMChatClient(ModelSettings(litellm_model="openai/judge", api_base=f"http://127.0.0.1:{upstream.port}/v1"))


def test_only_providers_litellm_reaches_asynchronously_are_dispatched_on_the_loop() -> None:
    assert dispatch.runs_inline("openai/gpt-4o-mini", None)
    assert dispatch.runs_inline("openai/anything", "http://127.0.0.1:1/v1")
    assert not dispatch.runs_inline("azure/my-deployment", "https://example.openai.azure.com")
    assert not dispatch.runs_inline("anthropic/claude-3-5-sonnet-20241022", None)
    assert not dispatch.runs_inline("no-such-provider/model", None)  # LiteLLM says what is wrong at the call


@pytest.mark.anyio
async def test_a_call_to_an_openai_compatible_model_runs_litellms_dispatch_on_the_loop(upstream: FakeUpstream) -> None:
    dispatch.install()
    client = openai_client(upstream)
    assert client.inline
    loop_thread, ran_on = threading.get_ident(), []
    real = litellm.main.completion

    def completion(*args: object, **kwargs: object) -> object:
        ran_on.append(threading.get_ident())
        return real(*args, **kwargs)

    # `is_litellm_dispatch` recognises whatever `litellm.main.completion` is at the call.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(litellm.main, "completion", completion)
        before = dispatch.LoopExecutor.inline_calls
        reply = await client.complete(ChatRequest(MESSAGES, max_tokens=1, top_logprobs=5))
    assert reply.text in {"0", "1", "2", "3"}
    assert ran_on == [loop_thread] and dispatch.LoopExecutor.inline_calls == before + 1


@pytest.mark.anyio
async def test_the_pinned_litellm_hands_the_executor_the_dispatch_this_module_recognises(
    upstream: FakeUpstream,
) -> None:
    """The shape of LiteLLM's `run_in_executor` argument is its internals: an upgrade that changes it
    fails here, instead of silently sending every call through a thread again."""
    dispatch.install()
    before = dispatch.LoopExecutor.inline_calls
    for _ in range(3):
        await openai_client(upstream).complete(ChatRequest(MESSAGES, max_tokens=1))
    assert dispatch.LoopExecutor.inline_calls == before + 3


@pytest.mark.anyio
async def test_other_work_on_the_default_executor_still_runs_in_a_thread_even_during_a_call() -> None:
    dispatch.install()
    with dispatch.inline_dispatch():
        worker = await asyncio.to_thread(threading.get_ident)
        lookup = await asyncio.get_running_loop().getaddrinfo("127.0.0.1", 80)
    assert worker != threading.get_ident() and lookup


@pytest.mark.anyio
async def test_unmarked_dispatch_runs_in_a_thread() -> None:
    dispatch.install()
    ran_on: list[int] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(litellm.main, "completion", lambda: ran_on.append(threading.get_ident()))
        call = partial(contextvars.copy_context().run, partial(litellm.main.completion))
        await asyncio.get_running_loop().run_in_executor(None, call)
    assert ran_on and ran_on[0] != threading.get_ident()


def test_an_exception_in_an_inline_dispatch_reaches_the_awaiting_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(**kwargs: object) -> None:
        raise ValueError("bad parameter")

    monkeypatch.setattr(litellm.main, "completion", failing)
    executor = dispatch.LoopExecutor()
    with dispatch.inline_dispatch():
        future = executor.submit(partial(contextvars.copy_context().run, partial(litellm.main.completion, model="m")))
    assert future.done() and isinstance(future.exception(), ValueError)


@pytest.mark.anyio
async def test_the_app_installs_the_executor_when_it_starts() -> None:
    app = create_app()
    async with app.router.lifespan_context(app):
        assert isinstance(asyncio.get_running_loop()._default_executor, dispatch.LoopExecutor)  # type: ignore[attr-defined]
