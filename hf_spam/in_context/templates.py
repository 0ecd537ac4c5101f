"""Prompt templates: how the instruction, the demonstrations and the query become the text the model reads.

A template has a ``kind``: ``chat`` renders a conversation through the tokenizer's own chat template (a
system message with the instruction, each demonstration as a user turn and an assistant answer, the query
as the last user turn, then the assistant's header); ``plain`` writes the instruction, then each
demonstration as ``query + answer + separator``, then the query. The model is scored on the ``answer``
that follows (:mod:`.scoring`). Placeholders: ``{labels}`` (the label words, "ham or spam") in the
instruction, ``{text}`` in the query, ``{label}`` in the answer; they are replaced literally (no other
braces are special). A YAML file with any of these keys overrides the default (``--template``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

TemplateKind = Literal["chat", "plain"]
TEMPLATE_KINDS: tuple[str, ...] = get_args(TemplateKind)
Demonstration = tuple[str, str]  # (text, label word)


@dataclass(frozen=True)
class Template:
    """The pieces of a prompt (see the module docstring)."""

    kind: TemplateKind
    instruction: str
    query: str
    answer: str
    separator: str = "\n\n"  # plain: after each demonstration

    def check(self, where: str) -> Template:
        """Raise a one-line ValueError naming ``where`` when a placeholder is missing or the kind unknown."""
        if self.kind not in TEMPLATE_KINDS:
            raise ValueError(f"{where}: kind {self.kind!r}: choose one of {list(TEMPLATE_KINDS)}")
        if "{text}" not in self.query:
            raise ValueError(f"{where}: query {self.query!r} has no {{text}}")
        if "{label}" not in self.answer:
            raise ValueError(f"{where}: answer {self.answer!r} has no {{label}}")
        return self

    def to_dict(self) -> dict[str, str]:
        """The template as the run folder records it."""
        return asdict(self)


DEFAULT_TEMPLATES: dict[str, Template] = {
    "chat": Template(
        kind="chat",
        instruction="Classify the message as {labels}. Answer with one word.",
        query="Message: {text}",
        answer="{label}",
    ),
    "plain": Template(
        kind="plain",
        instruction="Classify each message as {labels}.\n\n",
        query="Message: {text}\nLabel:",
        answer=" {label}",
    ),
}


def load_template(path: str | Path | None, tokenizer: PreTrainedTokenizerBase) -> Template:
    """The template for ``tokenizer``: the chat default when it has a chat template, else the plain one;
    ``path`` (a YAML mapping) overrides any of its keys (``kind`` picks the default it starts from)."""
    kind = "chat" if getattr(tokenizer, "chat_template", None) else "plain"
    if path is None:
        return DEFAULT_TEMPLATES[kind]
    where = f"--template {path}"
    try:
        values = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{where}: not valid YAML ({' '.join(str(error).split())})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping with keys {[f.name for f in fields(Template)]}")
    unknown = sorted(set(values) - {f.name for f in fields(Template)})
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {[f.name for f in fields(Template)]}")
    if not all(isinstance(v, str) for v in values.values()):
        raise ValueError(f"{where}: every value must be a string")
    kind = values.get("kind", kind)
    base = DEFAULT_TEMPLATES.get(kind, DEFAULT_TEMPLATES["plain"])
    template = replace(base, **values).check(where)
    if template.kind == "chat" and not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"{where}: kind chat, but the tokenizer has no chat template; use kind: plain")
    return template


def join_words(words: list[str]) -> str:
    """``["ham", "spam"]`` -> ``"ham or spam"``; ``["a", "b", "c"]`` -> ``"a, b or c"``."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def render(
    template: Template,
    tokenizer: PreTrainedTokenizerBase,
    words: list[str],
    demonstrations: list[Demonstration],
    query: str,
) -> str:
    """The prompt text up to where the answer starts: instruction, demonstrations, then the query."""
    instruction = template.instruction.replace("{labels}", join_words(words))
    ask = template.query.replace("{text}", query)
    if template.kind == "plain":
        shown = "".join(
            template.query.replace("{text}", text)
            + template.answer.replace("{label}", word)
            + template.separator
            for text, word in demonstrations
        )
        return instruction + shown + ask
    messages: list[dict[str, Any]] = [{"role": "system", "content": instruction}] if instruction else []
    for text, word in demonstrations:
        messages.append({"role": "user", "content": template.query.replace("{text}", text)})
        messages.append({"role": "assistant", "content": template.answer.replace("{label}", word)})
    messages.append({"role": "user", "content": ask})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
