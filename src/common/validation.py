"""Validation helpers shared by every module's request schemas."""

from __future__ import annotations


def full_match(body: str) -> str:
    """A pattern matching the whole string only, in Python and in JSON Schema (ECMA) alike.

    msgspec validates with `re.search`, where `$` also matches before a final newline
    ("Alice\\n" would pass `^[a-z]+$`); `(?![\\s\\S])` asserts the true end of the string and
    means the same in both regex dialects, so the published schema stays truthful.
    """
    return rf"^(?:{body})(?![\s\S])"
