"""Pure domain: enums, errors, value rules. Imports nothing else from kfpd."""
