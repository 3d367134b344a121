"""zhengshu (政数): one platform for a city's Government Services and Data Management Bureau.

The 12345 hotline and its work orders, dispute mediation, government services, public-
resource trading and public-data governance, on one database, one web console and one CLI.
See ``docs/`` and ``ARCHITECTURE.md`` in the design folder for the shape of the code.
"""

__version__ = "0.1.0"
