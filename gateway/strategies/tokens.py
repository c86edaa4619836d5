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
from functools import lru_cache
from itertools import compress, repeat

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
    """A cheap upper bound on the tokens of a text whose only whitespace is spaces (as `neutralize`
    leaves passages).

    tiktoken's pre-tokenizer (cl100k and o200k alike) never joins characters across a space,
    except that a word takes the one space before it; a run of spaces gives its other spaces a
    piece of their own, no longer than they are. So such a text has at most the tokens of its
    space-separated words (" word" for all but the first), each encoded alone, plus one per extra
    space, and no text has more tokens than bytes. The bound is the text's bytes, less what each word
    met before saves (its tokens minus its bytes, remembered per word): a passage is bounded in a few
    passes in C instead of an encode (~45 µs, the largest CPU cost of a listwise miss), and
    truncation only needs to know that it fits.

    The table starts with the vocabulary's plain words (tiktoken emits a piece found whole in the
    vocabulary as that one token), and each text teaches it a few words it lacks, up to `max_words`.
    """

    def __init__(self, enc: tiktoken.Encoding, max_words: int = 100_000, seed: bool = True) -> None:
        self.enc = enc
        # word -> tokens minus bytes of " word" (<= 0); a text's first word is keyed "\tword", alone (no
        # word holds a tab: texts with whitespace but spaces are not bounded).
        self.savings: dict[str, int] = dict(_vocabulary_words(enc)) if seed else {}
        # The empty words of a run of spaces: each of its other spaces costs at most its byte.
        self.savings.update({"": 0, _FIRST: 0})
        self._saving_of = self.savings.get
        self._room = len(self.savings) + max_words  # learned words: ~15 MB at most per encoding, beyond the seed

    def __call__(self, text: str) -> int | None:
        """At least `text`'s tokens; None when it holds whitespace other than spaces, or lone surrogates
        (encode it instead)."""
        size = _utf8_size(text)
        if size is None or (not text.isprintable() and OTHER_SPACE.search(text)):
            return None
        return size + self._saved(_words(text))

    def fits(self, text: str, max_tokens: int, spaced: bool = False) -> bool:
        """Whether `text` has at most `max_tokens` tokens, shown without encoding it (False: not shown).
        `spaced`: the caller knows the text holds no whitespace but spaces (`neutralize`'s output)."""
        size = _utf8_size(text)
        if size is None:
            return False
        need = size - max_tokens  # bytes known words must save
        if need <= 0:
            return True
        if not spaced and not text.isprintable() and OTHER_SPACE.search(text):
            return False
        # The first need/2 + 4 words show it for 90 % of the DL19 passages over their budget in bytes (need/4 + 2
        # words: 37 %); the rest of the text (the split's last item, which holds spaces and so is no word) is
        # bounded by its bytes.
        prefix = need // 2 + 4
        words = _words(text, prefix)
        if self._save(words, need):
            return True
        # A word with a closing mark ("France,") is rarely in the table; without the marks (each still
        # counted as its byte: `size` is the text's own) most words are.
        plain = _plain(text)
        if len(plain) < len(text):
            text, words = plain, _words(plain, prefix)
            if self._save(words, need):
                return True
        self._learn(words)
        # A split that reached the end holds all the text's words.
        return self._tokens(words if len(words) <= prefix else _words(text), size) <= max_tokens

    def _save(self, words: list[str], need: int) -> bool:
        """Whether the known ones of `words` save at least `need` bytes (an unknown word saves none)."""
        return sum(map(self._saving_of, words, repeat(0))) <= -need

    def _tokens(self, words: list[str], size: int) -> int:
        """At least the tokens of a text of `size` bytes split into `words` (the first marked): its known
        words from the table, the others encoded in one call.

        Words are encoded alone, so the unknown ones joined by spaces have the tokens they have in the
        text (a few percent of a passage's characters, where encoding all of it was the cost).
        """
        savings = list(map(self._saving_of, words))
        unknown = " ".join(compress(words, map(operator.is_, savings, repeat(None))))
        if not unknown:
            return size + sum(savings)  # type: ignore[arg-type]  # (no None among them)
        rest = unknown[1:] if unknown.startswith(_FIRST) else " " + unknown  # as the words stand in the text
        return (size + sum(filter(None, savings)) - len(rest.encode("utf-8"))
                + len(self.enc.encode_ordinary(rest)))

    def _saved(self, words: list[str]) -> int:
        """What `words` save (<= 0), learning a few of those not met yet."""
        savings = list(map(self._saving_of, words))  # None for a word not met yet: bounded by its bytes
        if None in savings:
            self._learn(words)
            savings = list(map(self._saving_of, words))
        return sum(filter(None, savings))

    def _learn(self, words: list[str]) -> None:
        """Remember what the first few of `words` not met yet save, while the table has room."""
        if len(self.savings) >= self._room:
            return
        learned = 0
        for word in words:
            if word not in self.savings and " " not in word:  # (a split's unsplit rest is no word)
                self.savings[word] = self._saving(word)
                learned += 1
                if learned == _LEARN_PER_TEXT:
                    return

    def _saving(self, word: str) -> int:
        alone = word[1:] if word.startswith(_FIRST) else " " + word
        return len(self.enc.encode_ordinary(alone)) - len(alone.encode("utf-8"))


_FIRST = "\t"
_LEARN_PER_TEXT = 2
OTHER_SPACE = re.compile(r"[^\S ]")  # whitespace but the space
# A run of ASCII capitals then lower-case letters, after at most one space, is one pre-tokenizer
# piece in cl100k and o200k alike.
_PLAIN_WORD = re.compile(rb" ?[A-Z]*[a-z]*")


# A comma, period, colon, semicolon, question or exclamation mark after an ASCII letter or digit and before
# a space (or the end) is a pre-tokenizer piece of its own in cl100k and o200k alike, one token of one byte:
# the letters or digits before it end where it starts, and no piece after it could have begun with it. So a
# text's tokens are those of the text without such marks, plus one per mark.
_CLOSING_MARK = re.compile(r"[,.;:!?](?<=[A-Za-z0-9].)(?= |\Z)")


def _plain(text: str) -> str:
    """`text` without its closing marks (`_CLOSING_MARK`), for bounding only: never what a prompt shows."""
    return _CLOSING_MARK.sub("", text)


def _words(text: str, limit: int = -1) -> list[str]:
    """`text` split at its spaces (at most `limit` times), the first word marked."""
    words = text.split(" ", limit)
    words[0] = _FIRST + words[0]
    return words


def _utf8_size(text: str) -> int | None:
    """`text`'s length in UTF-8; None when it holds lone surrogates (which tiktoken replaces)."""
    if text.isascii():
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def _bytes(text: str) -> int:
    """The bytes tiktoken encodes `text` as: a lone surrogate becomes U+FFFD, three bytes, as it does here."""
    size = _utf8_size(text)
    return size if size is not None else len(text.encode("utf-8", "surrogatepass"))


@lru_cache(maxsize=8)
def _vocabulary_words(enc: tiktoken.Encoding) -> dict[str, int]:
    """The savings of every plain word that is one token of the vocabulary (~65k in cl100k, ~106k in o200k)."""
    savings = {}
    for token in enc.token_byte_values():
        if len(token) > 1 and _PLAIN_WORD.fullmatch(token):
            word = token.decode("ascii")
            savings[word[1:] if word.startswith(" ") else _FIRST + word] = 1 - len(token)
    return savings


@lru_cache(maxsize=8)
def word_bound(enc: tiktoken.Encoding) -> WordBound:
    return WordBound(enc)


def count_text(enc: tiktoken.Encoding, text: str) -> int:
    # Untrusted text holding "<|endoftext|>" is plain text to us: encode_ordinary, which also skips
    # encode()'s search for special tokens.
    return len(enc.encode_ordinary(text))


def count_messages(enc: tiktoken.Encoding, messages: Sequence[Message]) -> int:
    return 3 + sum(3 + count_text(enc, m["role"]) + count_text(enc, m["content"]) for m in messages)


def count_messages_above(enc: tiktoken.Encoding, messages: Sequence[Message], enough: int) -> int:
    """At least `messages`' tokens: their count when their bytes (no text has more tokens) are over
    `enough`, else the bytes. A prompt's skeleton usually leaves room to spare, seen without encoding it."""
    bound = 3 + sum(3 + _bytes(m["role"]) + _bytes(m["content"]) for m in messages)
    return bound if bound <= enough else count_messages(enc, messages)


def truncate(enc: tiktoken.Encoding, text: str, max_tokens: int, spaced: bool = False) -> str:
    """Cut `text` to at most `max_tokens` tokens, on a token boundary. `spaced`: it holds no whitespace
    but spaces (`WordBound.fits`)."""
    # Encoding is linear in the text: a long document is sliced first instead of encoded whole.
    text = text[: max(max_tokens, 0) * MAX_CHARS_PER_TOKEN]
    if word_bound(enc).fits(text, max_tokens, spaced):  # a text no longer in bytes than the budget, first of all
        return text
    tokens = enc.encode_ordinary(text)
    if len(tokens) <= max_tokens:
        return text
    # A cut can split a multi-byte character; decoding drops the broken tail.
    return enc.decode(tokens[: max(max_tokens, 0)], errors="ignore")
