"""``backend: ssh``: each environment is a Unix account of its own on an existing sshd host.

``config`` (light: the CLI imports it), ``admin`` (the admin login over asyncssh),
``host_setup`` (what runs on the host, as root) and ``backend`` (the ``Backend``).
"""
