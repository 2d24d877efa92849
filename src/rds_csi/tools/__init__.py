"""Operator commands built on a running plugin: the end-to-end demo."""
