"""The types every layer shares: configuration, state, status, messages, durations, names.

The bottom layer (docs/development.md): imports only the stdlib and pydantic, never
``temporalio.workflow``, so that ``devenv ps`` stays light and the workflow sandbox passes
these modules through.
"""
