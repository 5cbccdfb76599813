"""Amounts of US dollars as users write them: ``2``, ``2.50``, ``"$2"``, ``"$0.10"``.

Pure, so the YAML loader and the workflow read a price or a budget the same way.
"""

from __future__ import annotations

import math
import re

MAX_USD = 1_000_000.0
ACCEPTED = "an amount of US dollars such as 2, 0.5 or $2 (at most 1000000)"
_PATTERN = re.compile(r"^\$?\s*(\d+(?:\.\d+)?|\.\d+)$")


class MoneyError(ValueError):
    """A value that is not an amount; the message says what is accepted."""


def parse_usd(value: object, *, positive: bool = False) -> float:
    """The amount ``value`` names, in USD; ``positive``: zero is refused too."""
    shown = repr(value)[:40]
    amount: float
    if isinstance(value, bool):
        raise MoneyError(f"{shown} is not an amount; accepted: {ACCEPTED}")
    if isinstance(value, int | float):
        amount = float(value)
    elif isinstance(value, str) and (match := _PATTERN.fullmatch(value.strip())) is not None:
        amount = float(match.group(1))
    else:
        raise MoneyError(f"{shown} is not an amount; accepted: {ACCEPTED}")
    if not math.isfinite(amount) or amount < 0 or amount > MAX_USD:
        raise MoneyError(f"{shown} is out of range; accepted: {ACCEPTED}")
    if positive and amount == 0:
        raise MoneyError(f"{shown} is zero; accepted: {ACCEPTED}, more than 0")
    return amount


def format_usd(amount: float) -> str:
    """``$2``, ``$0.10``, ``$30``: whole dollars bare, cents otherwise."""
    return f"${amount:.0f}" if amount == int(amount) else f"${amount:.2f}"
