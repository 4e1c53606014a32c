"""Command line: thin commands over library calls."""
