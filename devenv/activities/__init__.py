"""Provision / monitor / terminate, and the backends they drive."""
