"""The ``kfpd`` command line."""
