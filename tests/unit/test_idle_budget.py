"""``price_per_hour``, ``idle_budget`` and ``inactivity_duration: auto`` in dev.yml, and
the money deadline (pure): which rule ends an idle environment, and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devenv.cli.app import app
from devenv.cli.detail import render
from devenv.config.loader import load_config
from devenv.errors import UserError
from devenv.models import deadline
from devenv.models.config import InactivityBounds
from devenv.models.state import EnvSpec, EnvState, InstanceInfo, Status, TerminationReason
from tests.unit.test_config_file import isolated_home, one_error_line, write

__all__ = ["isolated_home"]

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
HEAD = "type: dev-environment\n"


@pytest.mark.parametrize(
    ("text", "budget", "price"),
    [
        ("idle_budget: 2\nprice_per_hour: 30\n", 2.0, 30.0),
        ("idle_budget: '$2'\nprice_per_hour: '$0.10'\n", 2.0, 0.1),
        ("idle_budget: $2.50\n", 2.5, None),
        ("price_per_hour: 0\n", None, 0.0),
    ],
)
def test_money_keys_accept_dollars(tmp_path: Path, text: str, budget: float, price: float) -> None:
    config = load_config(write(tmp_path, HEAD + text))
    assert (config.idle_budget, config.price_per_hour) == (budget, price)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("idle_budget: banana\n", "idle_budget: invalid value 'banana'"),
        ("idle_budget: 0\n", "idle_budget: invalid value 0"),
        ("idle_budget: -2\n", "idle_budget: invalid value -2"),
        ("idle_budget: 2 USD\n", "accepted: an amount of US dollars"),
        ("price_per_hour: yes\n", "price_per_hour: invalid value True"),
        ("price_per_hour: 1e99\n", "price_per_hour: invalid value"),
        ("inactivity_duration: automatic\n", "accepted: integer seconds"),
        ("inactivity_duration: 9w\n", "'9w' is longer than 4 weeks; accepted: "),
        ("inactivity_duration: banana\n", "or off/false/0 to disable, or auto"),
        ("inactivity_bounds: {min: 15m}\n", "only with inactivity_duration: auto"),
        (
            "inactivity_duration: auto\ninactivity_bounds: {min: 2h, max: 1h}\n",
            "min 2h is above max 1h",
        ),
        ("inactivity_duration: auto\ninactivity_bounds: {min: off}\n", "inactivity_bounds.min"),
    ],
)
def test_bad_values_one_line_exit_2(
    tmp_path: Path, isolated_home: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, HEAD + text)
    with pytest.raises(UserError) as caught:
        load_config(path)
    assert expected in str(caught.value)
    result = CliRunner().invoke(app, ["start", str(path)])
    assert result.exit_code == 2
    assert expected in one_error_line(result.output)
    assert not isolated_home.exists(), "nothing may be created for bad input"


def test_auto_starts_at_its_max(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, HEAD + "inactivity_duration: auto\n"))
    assert config.auto_bounds() == InactivityBounds(min=900, max=14_400)
    assert config.inactivity_seconds() == 14_400
    bounded = HEAD + "inactivity_duration: AUTO\ninactivity_bounds: {min: 5m, max: 2h}\n"
    config = load_config(write(tmp_path, bounded))
    assert (config.auto_bounds(), config.inactivity_seconds()) == (
        InactivityBounds(min=300, max=7200),
        7200,
    )
    fixed = load_config(write(tmp_path, HEAD + "inactivity_duration: 2h\n"))
    assert (fixed.auto_bounds(), fixed.inactivity_seconds()) == (None, 7200)


def idle_state(price: float | None, budget: float | None, inactivity: int | None) -> EnvState:
    spec = EnvSpec(
        name="box",
        user_public_key="ssh-ed25519 AAAA",
        inactivity_duration=inactivity,
        idle_budget=budget,
    )
    instance = InstanceInfo(
        instance_id="i",
        backend="local",
        host="127.0.0.1",
        port=22,
        username="dev",
        host_public_key="ssh-ed25519 AAAA",
        task_queue="q",
        price_per_hour=price,
    )
    return EnvState(
        spec=spec,
        status=Status.RUNNING,
        instance=instance,
        created_at=T0,
        ready_at=T0,
        idle_since=T0,
    )


@pytest.mark.parametrize(
    ("price", "budget", "inactivity", "after", "reason"),
    [
        # $2 on a $30/h box: 4 minutes; the 1h idle rule comes later.
        (30.0, 2.0, 3600, timedelta(minutes=4), TerminationReason.IDLE_BUDGET_EXCEEDED),
        # $2 on a $0.10/h box: 20 hours; the 1h idle rule is earlier and wins.
        (0.1, 2.0, 3600, timedelta(hours=1), TerminationReason.INACTIVITY_DURATION_EXCEEDED),
        (0.1, 2.0, None, timedelta(hours=20), TerminationReason.IDLE_BUDGET_EXCEEDED),
    ],
)
def test_the_earlier_deadline_wins(
    price: float, budget: float, inactivity: int | None, after: timedelta, reason: str
) -> None:
    s = idle_state(price, budget, inactivity)
    assert deadline.compute(s) == (T0 + after, reason)


def test_no_price_no_budget_deadline() -> None:
    """A free (or unpriced) box never spends its budget: only the other rules hold."""
    for price in (None, 0.0):
        assert deadline.compute(idle_state(price, 2.0, None)) == (None, None)


def test_in_use_no_budget_deadline() -> None:
    s = idle_state(30.0, 2.0, None)
    s.connections = 1
    assert deadline.compute(s) == (None, None)


def test_ps_verbose_says_which_rule_holds() -> None:
    s = idle_state(30.0, 2.0, 3600)
    deadline.recompute(s)
    text = "\n".join(render(s, T0 + timedelta(minutes=1)))
    assert "rule: idle budget $2 at $30/h (4m) since 09:00:00Z (idle_budget)" in text
    assert "idle_budget: idle budget $2 at $30/h (4m) (holds now)" in text
    cheap = idle_state(0.1, 2.0, 3600)
    deadline.recompute(cheap)
    text = "\n".join(render(cheap, T0 + timedelta(minutes=1)))
    assert "(inactivity_duration)" in text
    assert "idle_budget: idle budget $2 at $0.10/h (20h)" in text
    assert "holds now" not in text


def test_start_inactivity_flag_overrides_auto(tmp_path: Path, isolated_home: Path) -> None:
    """``--inactivity 2h`` replaces the file's ``auto``: its bounds then have no rule."""
    path = write(tmp_path, HEAD + "inactivity_duration: auto\ninactivity_bounds: {max: 1h}\n")
    result = CliRunner().invoke(app, ["start", str(path), "--inactivity", "2h"])
    assert result.exit_code == 2
    assert "only with inactivity_duration: auto" in one_error_line(result.output)
    flipped = write(tmp_path, HEAD + "inactivity_duration: 2h\ninactivity_bounds: {max: 1h}\n")
    result = CliRunner().invoke(app, ["start", str(flipped), "--inactivity", "banana"])
    assert result.exit_code == 2
    assert "--inactivity" in one_error_line(result.output)
    assert not isolated_home.exists()


def test_the_login_banner_tells_the_adaptive_rules() -> None:
    from devenv.workflows.display import login_banner

    s = idle_state(30.0, 2.0, 3600)
    s.spec.inactivity_auto = InactivityBounds()
    banner = login_banner(s)
    assert "It is learned from your breaks (auto, between 15m and 4h)" in banner
    assert "Also ended once idle time has cost its budget: idle budget $2 at $30/h (4m)." in (
        banner
    )
    plain = login_banner(idle_state(None, None, 3600))
    assert "auto" not in plain and "budget" not in plain


def test_ps_verbose_shows_the_auto_rule() -> None:
    s = idle_state(None, None, 3600)
    s.spec.inactivity_auto = InactivityBounds()
    deadline.recompute(s)
    text = "\n".join(render(s, T0 + timedelta(minutes=1)))
    assert "rule: idle for 1h since 09:00:00Z (inactivity_duration: auto)" in text
    assert "inactivity_duration: auto within 15m..4h, now 1h (no break known yet: the max)" in text
