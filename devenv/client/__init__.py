"""The Python SDK: the only code outside the worker that talks to Temporal.

``sync`` (``Client``, ``Environment``) for ordinary programs, ``aio``
(``AsyncClient``, ``AsyncEnvironment``) for asyncio ones; both are re-exported by
the ``devenv`` package itself.
"""
