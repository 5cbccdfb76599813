"""The backend's pydantic model of ``ready.json`` (the instance server writes it with
``files.ready_json`` and never imports pydantic: one process per instance, every MB
counts). Import it from ``files``.
"""

from __future__ import annotations

from pydantic import BaseModel


class ReadyInfo(BaseModel):
    """``ready.json``: written atomically once the server listens (``files.ready_json``)."""

    pid: int
    port: int
