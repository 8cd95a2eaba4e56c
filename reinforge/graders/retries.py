"""When to retry a judge (an OpenAI-compatible endpoint) and how long to wait first.

A connection error, a timeout (a judge that hangs past ``timeout_s``) and HTTP 408/409/429/5xx are
transient. The wait is what the judge asked for (``retry-after-ms``, or ``Retry-After`` in seconds or as
an HTTP date, at most ``MAX_RETRY_AFTER_S``), else exponential backoff with jitter.
"""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime
from typing import Any

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 60.0  # a longer Retry-After is waited for this long
MAX_BACKOFF_S = 8.0


def transient(e: Exception) -> bool:
    """Whether the ``openai`` client's exception ``e`` is worth another try."""
    import openai

    if isinstance(e, openai.APIConnectionError | openai.RateLimitError | openai.InternalServerError):
        return True  # APITimeoutError is an APIConnectionError
    return isinstance(e, openai.APIStatusError) and e.status_code in RETRY_STATUS


def retry_after_s(headers: Any) -> float | None:
    """The wait a judge asked for: ``retry-after-ms``, or ``Retry-After`` in seconds or as an HTTP date;
    None when absent or unreadable; at most ``MAX_RETRY_AFTER_S``.

    >>> retry_after_s({"Retry-After": "2"}), retry_after_s({"retry-after-ms": "250"}), retry_after_s({})
    (2.0, 0.25, None)
    >>> retry_after_s({"retry-after": "soon"}), retry_after_s({"retry-after": "3600"})
    (None, 60.0)
    """
    lowered = {str(k).lower(): str(v).strip() for k, v in dict(headers or {}).items()}
    seconds: float | None = None
    try:
        if "retry-after-ms" in lowered:
            seconds = float(lowered["retry-after-ms"]) / 1000
        elif "retry-after" in lowered:
            value = lowered["retry-after"]
            try:
                seconds = float(value)
            except ValueError:
                seconds = parsedate_to_datetime(value).timestamp() - time.time()
    except (ValueError, TypeError, OverflowError):
        return None
    if seconds is None or seconds != seconds or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER_S)


def retry_delay(e: Exception, attempt: int, backoff_s: float) -> float:
    """Seconds to wait before retry ``attempt + 1`` after the failure ``e``."""
    asked = retry_after_s(getattr(getattr(e, "response", None), "headers", None))
    if asked is not None:
        return asked
    return min(MAX_BACKOFF_S, backoff_s * 2**attempt) * (0.5 + random.random())
