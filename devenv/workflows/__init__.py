"""Deterministic code only: the environment workflow, its state and models."""
