"""The top layer: the `adapt` command (cli.app), wiring advisor, runners and reports together."""
