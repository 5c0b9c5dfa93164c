"""Amanah: the assistant a bank runs itself, on chat platforms and its own web chat."""

__version__ = "0.1.0"
