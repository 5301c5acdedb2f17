"""Keep API keys out of logs: uvicorn's access log prints query strings (``?apikey=…``)."""
from __future__ import annotations

import logging
import re

_SECRET = re.compile(r"((?:api_?key|apikey|token)=)[^&\s\"']+|(Bearer\s+)[^\s\"']+", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with API keys and bearer tokens replaced by ``***``."""
    return _SECRET.sub(lambda m: (m.group(1) or m.group(2)) + "***", text)


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
