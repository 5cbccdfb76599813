"""Who an environment is shared with, as the SDK resolves it: user names to the keys
registered in this deployment (``devenv users add NAME --key FILE``).

The registry is the HTTP API's users file under DEVENV_HOME; the SDK in direct mode is
the deployment itself (same home), so it reads the same file. In remote mode the
server resolves the names.
"""

from __future__ import annotations

from devenv.errors import InvalidValueError
from devenv.models.sharing import MAX_SHARED, USER_NAME
from devenv.models.state import SharedUser
from devenv.settings import Settings


def check_by(by: object) -> str | None:
    """Who makes a change (for its events): a user name or None."""
    if by is None:
        return None
    if not isinstance(by, str) or not USER_NAME.fullmatch(by):
        raise InvalidValueError(f"by: {str(by)[:40]!r} is not a user name")
    return by


def check_names(value: object) -> list[str]:
    """``shared_with`` as given: the whole list of user names. A lone name is refused, not
    taken as a list of one: ``{"shared_with": "bob"}`` would silently unshare everyone
    else (``share``/``unshare`` take a name or a list; they add or remove)."""
    if isinstance(value, str):
        raise InvalidValueError(
            f"shared_with: {value[:40]!r} is a single name; accepted: a list of user names "
            f'(["{value[:40]}"] for that user alone, [] for nobody)'
        )
    names = value
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise InvalidValueError(
            f"shared_with: {str(value)[:60]!r}; accepted: a list of user names ([] for nobody)"
        )
    if len(names) > MAX_SHARED:
        raise InvalidValueError(f"shared_with: {len(names)} users; accepted: at most {MAX_SHARED}")
    for name in names:
        if not USER_NAME.fullmatch(name):
            raise InvalidValueError(f"shared_with: {name[:40]!r} is not a user name")
    return list(dict.fromkeys(names))


def members(settings: Settings, value: object) -> list[SharedUser]:
    """The users ``value`` names, each with their registered key; one clear line for a
    name nobody registered or a user without a key."""
    from devenv.client.tokens import UserStore

    store = UserStore(settings)
    found = []
    for name in check_names(value):
        user = store.get(name)
        if user is None:
            raise InvalidValueError(
                f"shared_with: no devenv user {name!r}; add one with "
                f"`devenv users add {name} --key FILE`"
            )
        if user.public_key is None:
            raise InvalidValueError(
                f"shared_with: user {name!r} has no SSH key to log in with; register one "
                f"with `devenv users key {name} FILE`"
            )
        found.append(SharedUser(name=name, public_key=user.public_key))
    return found
