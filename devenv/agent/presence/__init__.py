"""devenv's presence agent: how many authenticated SSH connections a Unix account has.

Copied to sshd hosts and run there as the environment's own account, as the forced
command of devenv's internal key, so it needs no privilege and nothing but the
standard library of Python 3.8+. It never reads SSH_ORIGINAL_COMMAND: whatever the
client asks for, the same stream runs. As root, one per account, it is also the
machine's failsafe.

Its modules, each one job: ``table`` (pure: connections and jobs in a process table),
``procfs`` (reading /proc), ``lines`` (the stream's JSON lines), ``account`` (the
account's side: ``probe`` and ``stream``), ``failsafe`` (the root side), ``cli`` (the
command line). Hosts get them as one file, a zipapp
(``devenv.backends.ssh.agent_bundle``), run as ``python3 .../presence_agent-5.py``.
"""

AGENT_VERSION = "5"
"""In the installed file's name: a host keeps each version devenv ever installed."""
AGENT_SCRIPT = "presence_agent.py"
"""Its name in messages, and in process tables when it does not know its own file's."""
