"""The local backend: an SSH server process per environment on the worker's host."""
