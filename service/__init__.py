"""Pilah: sorts Indonesian government social-media comments so admins answer what matters first."""

__version__ = "0.1.0"
