"""Prompts as token ids: a shared prefix (run once, its key/value cache reused) and each query's own body.

:class:`PromptBuilder` renders a prompt (:func:`.templates.render`), tokenises it whole, and splits the
tokens where they stop being the same for every query: for one fixed set of demonstrations, after the
demonstrations; for demonstrations chosen per query (kNN), after the instruction. A prompt that would not
fit the context (``max_tokens``, counting the longest answer) loses demonstrations one at a time -- the
first shown first, which for kNN is the least similar -- and, when none is left, the end of the query
text; every such cut is counted in :class:`Prompt`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from .templates import Demonstration, Template, render

logger = logging.getLogger(__name__)

PROBES = ("A", "B")  # two different query texts: where renders of them part is where the query starts


@dataclass(frozen=True)
class Prompt:
    """One prompt's token ids: ``prefix`` (shared with other prompts, cached) then ``body``; how many
    demonstrations it shows and dropped to fit, and whether the query text was cut."""

    prefix: tuple[int, ...]
    body: tuple[int, ...]
    demonstrations: int = 0
    dropped: int = 0
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.prefix) + len(self.body)


def adds_bos(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """``[bos]`` when the tokenizer puts a BOS token before a text (Llama's), else ``[]`` (GPT-2's)."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return []
    with_special = tokenizer("a")["input_ids"]
    return (
        [bos]
        if with_special
        and with_special[0] == bos
        and with_special != tokenizer("a", add_special_tokens=False)["input_ids"]
        else []
    )


class PromptBuilder:
    """Token ids of prompts and answers for one template, tokenizer and set of label words.

    ``words``: the label word of each class, in class order. ``max_tokens``: the longest sequence the
    model may read (prompt + answer, less the answer's last token, which is only predicted).
    """

    def __init__(
        self, template: Template, tokenizer: PreTrainedTokenizerBase, words: list[str], max_tokens: int
    ) -> None:
        self.template, self.tokenizer, self.words, self.max_tokens = template, tokenizer, words, max_tokens
        self.bos = adds_bos(tokenizer) if template.kind == "plain" else []  # a chat template writes its own
        self.answers = [self.encode(template.answer.replace("{label}", word)) for word in words]
        empty = [word for word, ids in zip(words, self.answers, strict=True) if not ids]
        if empty:
            raise ValueError(f"--label_words: {empty} give no tokens")
        if len({tuple(ids) for ids in self.answers}) < len(self.answers):
            raise ValueError(f"--label_words {words}: two classes have the same tokens")
        self._prefixes: dict[tuple[Demonstration, ...] | None, tuple[str, tuple[int, ...]]] = {}

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text``, no special tokens added (those written in it are kept)."""
        return self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]

    def render(self, demonstrations: list[Demonstration], query: str) -> str:
        """The prompt text (see :func:`.templates.render`)."""
        return render(self.template, self.tokenizer, self.words, demonstrations, query)

    def prefix(self, demonstrations: tuple[Demonstration, ...] | None) -> tuple[int, ...]:
        """The token ids every prompt with these fixed demonstrations starts with, or, for ``None``, every
        prompt whose demonstrations vary (the instruction): the longest common start of the tokens of two
        probe prompts that differ in their query (and, for ``None``, in their demonstrations)."""
        if demonstrations not in self._prefixes:
            if len(self._prefixes) >= 4096:  # kNN: one per query's demonstrations; a server runs for long
                self._prefixes.clear()
            if demonstrations is None:
                probes = [self.render([], PROBES[0]), self.render([(PROBES[1], self.words[0])], PROBES[0])]
            else:
                probes = [self.render(list(demonstrations), probe) for probe in PROBES]
            first, second = (self.bos + self.encode(probe) for probe in probes)
            shorter = min(len(first), len(second))
            common = next((i for i in range(shorter) if first[i] != second[i]), shorter)
            self._prefixes[demonstrations] = tuple(first[:common])
        return self._prefixes[demonstrations]

    def prompt(self, demonstrations: list[Demonstration], query: str, fixed: bool) -> Prompt:
        """The prompt of ``query`` after ``demonstrations`` (``fixed``: the same for every query, so the
        prefix includes them), trimmed to fit :attr:`max_tokens`."""
        answer = max(map(len, self.answers)) - 1
        shown = list(demonstrations)
        while True:
            prompt = self._split(shown, query, fixed and len(shown) == len(demonstrations))
            if len(prompt) + answer <= self.max_tokens or not shown:
                break
            shown = shown[1:]
        dropped = len(demonstrations) - len(shown)
        truncated = False
        if len(prompt) + answer > self.max_tokens:
            ids = self.encode(query)
            keep = len(ids) - (len(prompt) + answer - self.max_tokens)
            while len(prompt) + answer > self.max_tokens and keep > 0:
                prompt = self._split(shown, self.tokenizer.decode(ids[:keep]), False)
                keep -= max(1, len(prompt) + answer - self.max_tokens)
            if len(prompt) + answer > self.max_tokens:
                raise ValueError(
                    f"the prompt without demonstrations or text has {len(prompt)} tokens: more than the "
                    f"{self.max_tokens} the model reads (--max_length, or the model's context)"
                )
            truncated = True
        return Prompt(prompt.prefix, prompt.body, len(shown), dropped, truncated)

    def _split(self, shown: list[Demonstration], query: str, fixed: bool) -> Prompt:
        """The whole prompt's tokens (never tokenised in pieces: caching changes no token), split after the
        shared prefix when they start with it (a query whose first token merges with the prefix's last
        does not: it runs whole)."""
        ids = tuple(self.bos + self.encode(self.render(shown, query)))
        prefix = self.prefix(tuple(shown) if fixed else None)
        if ids[: len(prefix)] != prefix:
            prefix = ()
        return Prompt(prefix, ids[len(prefix) :], len(shown))
