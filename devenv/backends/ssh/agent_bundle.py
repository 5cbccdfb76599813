"""The presence agent as hosts get it: one file, a zipapp of ``devenv.agent.presence``.

Hosts run ``python3 HOST_DIR/agent/presence_agent-<AGENT_VERSION>.py`` (the forced
command of devenv's internal key, the failsafe): Python runs a zip with a top-level
``__main__.py`` whatever the file's name. The bytes are the same on every build of the
same sources (fixed timestamps, sorted names, stored uncompressed), so a host's copy is
rewritten only when the agent changed.

It is written with ``zipfile`` rather than ``zipapp.create_archive``, which takes each
entry's time from the file system (in local time) and so differs between checkouts.
"""

from __future__ import annotations

import functools
import io
import zipfile
from importlib import resources

from devenv.agent.presence import AGENT_VERSION

PACKAGE = "presence"
"""The package's name inside the zip (its modules import each other relatively)."""
AGENT_FILE = f"presence_agent-{AGENT_VERSION}.py"
"""The installed file's name: the version in it, so a newer devenv installs beside."""
MAIN = f"import sys\n\nfrom {PACKAGE}.cli import main\n\nsys.exit(main())\n"
_EPOCH = (1980, 1, 1, 0, 0, 0)
"""Every entry's time: the earliest a zip can hold, so builds are byte-identical."""


def modules() -> dict[str, bytes]:
    """The agent's modules by file name (``table.py``, ...), read from this package."""
    folder = resources.files("devenv.agent.presence")
    found = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".py") and entry.name != "__main__.py":
            found[entry.name] = entry.read_bytes()
    return found


@functools.cache
def agent_zipapp() -> bytes:
    """The file hosts install and run: ``__main__.py`` and ``presence/*.py``."""
    entries = {"__main__.py": MAIN.encode()}
    entries.update({f"{PACKAGE}/{name}": text for name, text in modules().items()})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.create_system = 3  # Unix: the mode above is read as one
            archive.writestr(info, entries[name])
    return buffer.getvalue()
