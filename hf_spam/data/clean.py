"""Optional text clean-up (off by default everywhere; ``clean=True`` on a loader turns it on)."""

from __future__ import annotations

import html
import re

_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Return ``text`` with markup artefacts removed; what it changes, and nothing else:

    * HTML line breaks (``<br />``, ``<br/>``, ``<br>``, any case; IMDB has them) become a space;
    * HTML entities are unescaped (``&lt;`` -> ``<``, ``&gt;`` -> ``>``, ``&amp;`` -> ``&``,
      ``&#39;`` -> ``'``; the SMS file has ``&lt;#&gt;`` placeholders and ``&amp;``);
    * runs of whitespace (spaces, tabs, newlines) collapse to one space; ends are stripped.

    Case, punctuation, other tags, URLs and numbers are kept. A text that cleans to ``""`` is a
    bad row for the loaders (reported, never kept silently).
    """
    text = _BR.sub(" ", text)
    text = html.unescape(text)
    return _SPACES.sub(" ", text).strip()
