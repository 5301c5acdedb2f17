"""Keep API keys out of logs and URLs.

uvicorn's access log prints request targets as sent, percent-encoding included, so a key can
hide from a plain pattern (``api%6Bey=…``, or ``next=%2Fui%3Fapikey%3D…`` inside another
parameter). ``redact`` therefore also looks at the fully percent-decoded text, and when a secret
shows only there, logs that decoded text (control characters escaped) with the secret replaced.
``without_key_params`` drops ``apikey`` parameters from a URL the server is about to echo (the
sign-in redirect's ``next``).
"""
from __future__ import annotations

import logging
import re
from urllib.parse import unquote

_SECRET = re.compile(r"((?:api_?key|apikey|token)=)[^&\s\"']+|(Bearer\s+)[^\s\"']+", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_KEY_NAMES = re.compile(r"api_?key|token", re.IGNORECASE)


def _mask(text: str) -> str:
    return _SECRET.sub(lambda m: (m.group(1) or m.group(2)) + "***", text)


def _fully_unquoted(text: str) -> str:
    for _ in range(5):  # a key may sit under several layers of encoding
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return text


def redact(text: str) -> str:
    """``text`` with API keys and bearer tokens replaced by ``***``, also where percent-encoding
    hid them (then the decoded text is returned, control characters escaped)."""
    text = _mask(text)
    if "%" not in text:
        return text
    decoded = _fully_unquoted(text)
    masked = _mask(decoded)
    if masked == decoded:
        return text
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", masked)


def without_key_params(url: str) -> str:
    """``url`` without query parameters whose decoded name is an API key or token name."""
    path, sep, query = url.partition("?")
    if not sep:
        return url
    kept = [piece for piece in query.split("&")
            if not _KEY_NAMES.fullmatch(_fully_unquoted(piece.partition("=")[0]).strip())]
    return path + ("?" + "&".join(kept) if kept else "")


class RedactingFilter(logging.Filter):
    """Rewrites a record's message and string arguments through ``redact``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


def install(logger_names: tuple[str, ...] = ("uvicorn.access", "uvicorn.error", "uvicorn",
                                             "t9k_em_server")) -> None:
    """Attach the filter to the loggers that may see request URLs."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
