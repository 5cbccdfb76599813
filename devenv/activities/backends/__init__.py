"""Where instances live: each backend provisions, checks and terminates its own kind."""
