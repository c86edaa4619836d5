"""Token counting and truncation with tiktoken, offline.

Counts follow OpenAI's chat accounting (3 tokens per message plus role and
content, plus 3 to prime the reply), which reproduces LiteLLM's own counts for
the GPT-4 family. They are used when an upstream does not report `usage`, and
to truncate passages so a prompt always fits the model's context.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from functools import lru_cache, partial
from itertools import accumulate, repeat

import tiktoken

from gateway.offline import require_encoding

Message = dict[str, str]

# A token is rarely longer than this many characters, so a prefix this many times a budget
# holds more than the budget: long texts are sliced before anything runs over them.
MAX_CHARS_PER_TOKEN = 16

# Models whose name starts with one of these use o200k_base; everything else
# (the GPT-4/3.5 family and unknown models) is counted with cl100k_base.
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")


def encoding_name_for(model: str) -> str:
    """Pick the encoding for a LiteLLM model string such as ``openai/gpt-4o``.

    The provider prefix is dropped first: LiteLLM's own counter misses it and
    counts ``openai/gpt-4o`` with cl100k_base.
    """
    name = model.rsplit("/", 1)[-1].lower()
    return "o200k_base" if name.startswith(_O200K_PREFIXES) else "cl100k_base"


@lru_cache(maxsize=8)
def get_encoding(name: str) -> tiktoken.Encoding:
    require_encoding(name)
    return tiktoken.get_encoding(name)


class WordBound:
    """A cheap upper bound on the tokens of a single-spaced text (as `neutralize` leaves passages).

    tiktoken's pre-tokenizer (cl100k and o200k alike) never joins characters across a space,
    except that a word takes the one space before it. So a text whose only whitespace is single
    spaces has exactly the tokens of its words (" word" for all but the first), each encoded alone,
    and no text has more tokens than bytes. The bound is the text's bytes, less what each word met
    before saves (its bytes minus its tokens, remembered per word): a passage is bounded in a few
    passes in C instead of an encode (~45 µs, the largest CPU cost of a listwise miss), and
    truncation only needs to know that it fits.

    The table starts with the vocabulary's plain words (tiktoken emits a piece found whole in the
    vocabulary as that one token), and each text teaches it a few words it lacks, up to `max_words`.
    """

    def __init__(self, enc: tiktoken.Encoding, max_words: int = 100_000, seed: bool = True) -> None:
        self.enc = enc
        # word -> tokens minus bytes of " word" (<= 0); the first word of a text is keyed b"\0word", alone.
        self.savings: dict[bytes, int] = dict(_vocabulary_words(enc)) if seed else {}
        self._room = len(self.savings) + max_words  # learned words: ~15 MB at most per encoding, beyond the seed

    def __call__(self, text: str) -> int | None:
        """At least `text`'s tokens; None when the text is spaced otherwise (encode it instead)."""
        if not text:
            return 0
        words = self._words(text, -1)
        if words is None:
            return None
        return len(text.encode("utf-8")) + self._saved(words)

    def fits(self, text: str, max_tokens: int) -> bool:
        """Whether `text` has at most `max_tokens` tokens, shown without encoding it (False: not shown)."""
        need = len(text.encode("utf-8", "surrogatepass")) - max_tokens  # bytes known words must save
        if need <= 0:
            return True
        enough = partial(operator.ge, -need)
        # Words are read only until they saved enough (accumulate and any stop there, all in C); a word
        # saves ~4.5 bytes in English, so the first need/2 words nearly always do, and the rest of the
        # text is bounded by its bytes. Failing that, every word is counted.
        for prefix in (need // 2 + 4, -1):
            words = self._words(text, prefix)
            if words is None:
                return False
            if any(map(enough, accumulate(map(self.savings.get, words, repeat(0))))):
                return True
            self._learn(words)
            if len(words) < prefix:  # no rest was left out
                return False
        return False

    def _words(self, text: str, prefix: int) -> list[bytes] | None:
        """The first `prefix` words of `text` (all of them with -1), the first one marked; None when the
        text is spaced otherwise."""
        # Printable text has no whitespace but " " (str's whitespace holds tiktoken's \s); the search is
        # for the rest (MS MARCO's mojibake is full of C1 controls).
        if not text.isprintable() and _OTHER_SPACE.search(text):
            return None
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: tiktoken replaces them before it encodes
            return None
        words = data.split(b" ", prefix)
        if 0 <= prefix < len(words):
            words.pop()  # the rest of the text, bounded by its bytes
        if b"" in words:  # double spaces, or spaces at either end
            return None
        words[0] = b"\0" + words[0]
        return words

    def _saved(self, words: list[bytes]) -> int:
        """What `words` save (<= 0), learning a few of those not met yet."""
        savings = list(map(self.savings.get, words))  # None for a word not met yet: bounded by its bytes
        if None in savings:
            self._learn(words)
            savings = list(map(self.savings.get, words))
        return sum(filter(None, savings))

    def _learn(self, words: list[bytes]) -> None:
        """Remember what the first few of `words` not met yet save, while the table has room."""
        if len(self.savings) >= self._room:
            return
        learned = 0
        for word in words:
            if word not in self.savings:
                self.savings[word] = self._saving(word)
                learned += 1
                if learned == _LEARN_PER_TEXT:
                    return

    def _saving(self, word: bytes) -> int:
        alone = word[1:] if word.startswith(b"\0") else b" " + word
        return len(self.enc.encode(alone.decode("utf-8"), disallowed_special=())) - len(alone)


_LEARN_PER_TEXT = 2
_OTHER_SPACE = re.compile(r"[^\S ]")
# A run of ASCII capitals then lower-case letters, after at most one space, is one pre-tokenizer
# piece in cl100k and o200k alike.
_PLAIN_WORD = re.compile(rb" ?[A-Z]*[a-z]*")


@lru_cache(maxsize=8)
def _vocabulary_words(enc: tiktoken.Encoding) -> dict[bytes, int]:
    """The savings of every plain word that is one token of the vocabulary (~65k in cl100k, ~106k in o200k)."""
    savings = {}
    for token in enc.token_byte_values():
        if len(token) > 1 and _PLAIN_WORD.fullmatch(token):
            key = token[1:] if token.startswith(b" ") else b"\0" + token
            savings[key] = 1 - len(token)
    return savings


@lru_cache(maxsize=8)
def word_bound(enc: tiktoken.Encoding) -> WordBound:
    return WordBound(enc)


def count_text(enc: tiktoken.Encoding, text: str) -> int:
    return len(enc.encode(text, disallowed_special=()))


def count_messages(enc: tiktoken.Encoding, messages: Sequence[Message]) -> int:
    return 3 + sum(3 + count_text(enc, m["role"]) + count_text(enc, m["content"]) for m in messages)


def truncate(enc: tiktoken.Encoding, text: str, max_tokens: int) -> str:
    """Cut `text` to at most `max_tokens` tokens, on a token boundary."""
    # Encoding is linear in the text: a long document is sliced first instead of encoded whole.
    text = text[: max(max_tokens, 0) * MAX_CHARS_PER_TOKEN]
    if word_bound(enc).fits(text, max_tokens):  # a text no longer in bytes than the budget, first of all
        return text
    tokens = enc.encode(text, disallowed_special=())
    if len(tokens) <= max_tokens:
        return text
    # A cut can split a multi-byte character; decoding drops the broken tail.
    return enc.decode(tokens[: max(max_tokens, 0)], errors="ignore")
