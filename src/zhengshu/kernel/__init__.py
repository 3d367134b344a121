"""The kernel: what every bounded context stands on.

Settings, the database engine and session, the declarative base and portable column
types, the ``DomainError`` family, the clock, authorization primitives, the audit log and
its hash chain, the working-day calendar, and jobs queued on commit. The kernel imports no
other zhengshu package (checked by import-linter).
"""
