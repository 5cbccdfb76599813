"""How the SDK reaches environments: a ``Transport`` (``base``), either straight to
Temporal (``direct``) or through a devenv server's HTTP API (``http``).

The modules are imported by whoever needs one, never here: ``devenv ps`` loads only the
transport it uses (and remote mode no Temporal at all).
"""
