"""Command-line plumbing: flags, the terminal, the demo and the GLUE submission bundle."""
