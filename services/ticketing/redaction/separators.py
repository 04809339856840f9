"""What may stand between the words of a recovery phrase: separators and numbering up to 24."""

from __future__ import annotations

import re

# Whitespace, ASCII and full-width punctuation, dashes, brackets, quotes, bullets.
CHARS = r"\s,;.:()\[\]{}<>\-\u2013\u2014_/|*•·\"'“”‘’#、，；。：（）【】「」"
# "1." … "24)" as people number the words of a phrase; larger numbers are not numbering.
NUMBERING = r"(?<![0-9])(?:0?[0-9]|1[0-9]|2[0-4])(?![0-9])"

GAP = re.compile(rf"(?:[{CHARS}]|{NUMBERING})+")
# Between groups of words written apart ("的一是 在不了", "1.的一是 2.在不了").
SPACES = re.compile(rf"(?:\s|[.)、]|{NUMBERING})+")
FIRST_NUMBER = re.compile(NUMBERING)
LEADING_NUMBER = re.compile(rf"{NUMBERING}[{CHARS}]*$")
