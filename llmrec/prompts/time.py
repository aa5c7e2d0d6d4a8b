"""Time gaps as the model sees them (`prompts.time: gaps`): the time between consecutive items of a
history, and from its last item to the moment of the request (`now`), cut into a few log-spaced
buckets that read as words ("days later").

Each listed item has two gaps: `before` (since the previous item; none for a user's first) and
`after` (until the next item, which for the last item of a prompt is `now`). Items list as tokens,
so the gaps reach the model without a token of their own: for item-list prompts as learned
embeddings added to the item's first token (`before`) and last token (`after`; one token for
atomic ids), coded per token by `gap_codes`; for text templates as words (`item.gap`, `now_gap`).

Why both: the `before` gaps mark sessions and bursts in the history; the `after` gap of the last
item says how long the user has been away, which decides between "more of the same session" and a
return after months. Training sees the true next gap at every position; a request gives `now` or
gets the default, the last item's time plus the user's median gap (no request ever sees the target's
own time, so offline evaluation cannot leak it).
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Sequence
from datetime import datetime, timezone

from llmrec.errors import InputError

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
# upper bounds (seconds) of buckets 1.. ; bucket 0 is "no gap" (a user's first item, text tokens)
BOUNDS = [MINUTE, 10 * MINUTE, HOUR, 6 * HOUR, DAY, 3 * DAY, 7 * DAY, 30 * DAY, 90 * DAY, 365 * DAY]
WORDS = ["", "moments later", "minutes later", "within the hour", "hours later", "later that day",
         "a day or two later", "days later", "weeks later", "a month or two later", "months later",
         "over a year later"]  # fmt: skip
BUCKETS = len(BOUNDS) + 2  # none, the bounded ones, and "over a year"


def bucket(gap_seconds: float) -> int:
    """1..BUCKETS-1 for a gap of `gap_seconds` (>= 0)."""
    return 1 + bisect.bisect_right(BOUNDS, gap_seconds)


def default_now(times: Sequence[float]) -> float:
    """When a request is taken to happen without an explicit `now`: the last item's time plus the
    median gap of the history (the last time itself for a history of one item)."""
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    return times[-1] + (statistics.median(gaps) if gaps else 0.0)


def history_gaps(
    times: Sequence[float], now: float | None = None, before_first: float | None = None
) -> tuple[list[int], list[int]]:
    """(before, after) buckets of each item of a history with these `times` (oldest first).
    `now`: the request's time (None: `default_now`); `before_first`: the time of the item before
    the first one shown (a training window cut from a longer sequence), None if there is none."""
    if not times:
        return [], []
    if now is None:
        now = default_now(times)
    before = [0 if before_first is None else bucket(times[0] - before_first)]
    before += [bucket(b - a) for a, b in zip(times, times[1:], strict=False)]
    after = [bucket(b - a) for a, b in zip(times, times[1:], strict=False)] + [bucket(now - times[-1])]
    return before, after


def gap_code(before: int, after: int) -> int:
    """One token's two gaps as one number (0: neither): what training rows and prompts carry."""
    return before + BUCKETS * after


def split_code(code: int) -> tuple[int, int]:
    return code % BUCKETS, code // BUCKETS


def parse_time(value: object, where: str, field: str = "t") -> float:
    """A request's time: unix seconds (a number, or a string of one) or an ISO-8601 date (UTC
    unless it says otherwise)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.strip():
        try:
            return float(value)
        except ValueError:
            pass
        try:
            stamp = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()
    raise InputError(f"{value!r} is not a time (unix seconds or an ISO-8601 date)", where=where, field=field)


def split_timed(entries: Sequence[str], where: str = "history") -> tuple[list[str], list[float] | None]:
    """`item@time` entries (the CLI's `--history "50@881250949,172@2024-01-05T10:00"`) as (items,
    times); plain ids as (items, None). Either every entry has a time or none does."""
    timed = ["@" in e for e in entries]
    if not any(timed):
        return list(entries), None
    if not all(timed):
        n = timed.index(False) + 1
        raise InputError("give a time for every item (item@time) or for none", where=f"{where}, item {n}",
                         field="t")  # fmt: skip
    pairs = [e.rsplit("@", 1) for e in entries]
    items = [item.strip() for item, _ in pairs]
    times = [parse_time(t.strip(), f"{where}, item {n}") for n, (_, t) in enumerate(pairs, start=1)]
    return items, times


def check_times(items: Sequence[str], times: object, now: object = None, where: str = "history") -> None:
    """A request's times: one finite number (seconds) per item, never decreasing, and `now` (if
    given) not before the last. Errors name the entry and the field."""
    if not isinstance(times, list | tuple):
        raise InputError(f"times must be a list of numbers (seconds), got {type(times).__name__}",
                         where=where, field="t")  # fmt: skip
    if len(times) != len(items):
        raise InputError(f"{len(times)} times for {len(items)} items", where=where, field="t")
    for n, t in enumerate(times, start=1):
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
            raise InputError(f"time {t!r} is not a finite number of seconds", where=f"{where}, item {n}",
                             field="t")  # fmt: skip
        if n > 1 and t < times[n - 2]:
            raise InputError(f"time {t} is before the previous item's ({times[n - 2]}): list a history "
                             "oldest first", where=f"{where}, item {n}", field="t")  # fmt: skip
    if now is not None:
        if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
            raise InputError(f"now {now!r} is not a finite number of seconds", where=where, field="now")
        if times and now < times[-1]:
            raise InputError(f"now ({now}) is before the history's last item ({times[-1]})", where=where,
                             field="now")  # fmt: skip
