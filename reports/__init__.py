"""Reports: pure functions from the results table to Markdown and self-contained HTML with plots."""
