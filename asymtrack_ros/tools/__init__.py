"""Command-line tools; each module has a ``main()`` registered in setup.py."""
