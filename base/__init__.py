"""The ground floor: plan schema, strategy registry, run-result schema, data contract, errors, paths, io, progress.

It imports nothing of adaptlab's other packages. Importing it registers the built-in strategies.
"""
from base import strategies  # noqa: F401  (registers the built-in strategies)
