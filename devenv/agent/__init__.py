"""The presence agent devenv copies to sshd hosts (one stdlib-only file, Python 3.8+)."""
