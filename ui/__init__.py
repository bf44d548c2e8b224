"""`adapt ui`: the web board. Pages call the same functions the CLI calls; only ui.app imports the web framework."""
