"""Redaction of wallet secrets in support messages, and detection of agents who ask for them.

Pure functions, no I/O except reading the BIP-39 wordlists shipped with ``mnemonic`` once, lazily.
Every secret becomes ``[redacted:<kind>]``; a card number is masked to its first 6 and last 4 digits.
"""

from __future__ import annotations

from .model import Redaction, SecretKind
from .redactor import redact
from .solicitation import asks_for_secret
from .warning import secret_warning

__all__ = ["Redaction", "SecretKind", "asks_for_secret", "redact", "secret_warning"]
