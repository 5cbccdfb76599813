"""The Python SDK: the only code outside the worker that talks to Temporal.

``sync`` (``Client``, ``Environment``) for ordinary programs, ``aio`` (``AsyncClient``)
and ``environment`` (``AsyncEnvironment``) for asyncio ones; both are re-exported by
the ``devenv`` package itself. Their calls travel over a transport (``transports``):
straight to Temporal, or through a devenv server's HTTP API. The package has no import
cycle (``tests/unit/test_client_imports.py``).
"""
