"""``backend: ssh``: each environment is a Unix account of its own on an existing sshd host.

``config`` (light: the CLI imports it), ``pools`` (the host pools an admin registers),
``keyfiles`` (key files read without quoting them), ``admin`` (the admin login over
asyncssh), ``host_setup`` (what runs on the host, as root) and ``backend`` (the ``Backend``).
"""
