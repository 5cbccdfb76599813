"""Tests of the presence agent for sshd hosts."""
