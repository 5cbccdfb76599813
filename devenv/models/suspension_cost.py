"""What a suspended environment costs against running, as `ps -v` and warnings say it."""

from __future__ import annotations

from devenv.models.status import EnvironmentStatus


def money(usd: float | None) -> str:
    """'$12.41' / '$0.00' / '-' (price unknown)."""
    return "-" if usd is None else f"${usd:,.2f}"


def per_hour(usd: float | None) -> str:
    """'$1.01/h'; a storage price of a cent or less keeps its first digits ('$0.011/h',
    '$0.0009/h': 8 GB of gp3)."""
    if usd is None:
        return "-"
    if 0 < usd < 0.01:
        return f"${usd:.4f}/h"
    return f"${usd:,.3f}/h" if 0 < usd < 0.1 else f"${usd:,.2f}/h"


def suspension_words(row: EnvironmentStatus) -> str:
    """``storage $0.011/h ($0.05 so far) vs $1.01/h running; suspension saved $4.51``: what
    a suspended environment costs against what it would running; empty when the running
    price is unknown. ``row`` is costed (``EnvironmentStatus.costed``)."""
    if row.price_per_hour is None:
        return ""
    storage = (
        f"storage {per_hour(row.storage_price_per_hour)} ({money(row.storage_cost)} so far)"
        if row.storage_price_per_hour is not None
        else "no storage price known"
    )
    return (
        f"{storage} vs {per_hour(row.price_per_hour)} running; "
        f"suspension saved {money(row.suspension_saved)}"
    )
