"""System administration pages and API: the working-day calendar, the audit log, partner
tokens. Built on ``kernel`` and ``org``; holds no tables of its own."""
