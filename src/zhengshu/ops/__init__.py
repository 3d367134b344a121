"""Operating an installation: backups and restores (``zhengshu backup`` / ``restore``).

Imports only ``kernel`` (and ``org`` if it ever needs people): it works on the database
and the data directory as a whole, never on one module's rows.
"""
