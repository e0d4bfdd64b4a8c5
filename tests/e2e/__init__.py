"""Browser tests of the admin page (a package, so that its conftest does not shadow tests/conftest.py)."""
