"""The HTTP API that `devenv server` serves beside its worker (FastAPI on uvicorn).

Presentation over the SDK, like the CLI: every route calls one ``AsyncClient`` of the
server process and never Temporal itself. ``tokens`` (users and bearer tokens) needs
neither FastAPI nor Temporal, so that `devenv token` and `devenv users` stay fast.
"""
