"""Test harnesses shared by several test folders."""
