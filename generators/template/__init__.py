"""A generator adapter to copy. See ``adapter.py`` and docs/adding-a-generator.md."""
