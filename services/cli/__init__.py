"""The ``alignstream`` command."""
