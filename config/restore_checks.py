"""What a restore must find in the restored database beyond the model: the migration table
(`restoreMigrationTable`) and the tables whose row counts are compared (`restoreCheckTables`).

Read only by `python -m bootstrap restore` (bootstrap/restore_verify.py), never by the program;
parsed here, with the rest of the config, so a bad value fails every command the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from config.limits import PG_IDENTIFIER_RE
from config.reader import Reader

# Migration tools' bookkeeping tables, and how each records the applied version (their docs:
# Alembic, golang-migrate/Rails/dbmate, Flyway, goose, Django, Knex).
MIGRATION_TABLES = ("alembic_version", "schema_migrations", "flyway_schema_history", "goose_db_version", "django_migrations", "knex_migrations")
DETECT, NO_MIGRATIONS = "", "none"
_QUALIFIED = rf"(?:{PG_IDENTIFIER_RE}\.)?{PG_IDENTIFIER_RE}"


@dataclass(frozen=True)
class RestoreChecks:
    check_tables: tuple[str, ...] = ()
    """Tables (`table` in the app schema, or `schema.table`) whose row counts a restore reports and compares."""
    migration_table: str = DETECT
    """"" = find one of MIGRATION_TABLES in the app schema (then public); "none" = the app has no migrations."""

    def qualified(self, table: str, app_schema: str) -> tuple[str, str]:
        schema, _, name = table.rpartition(".")
        return (schema or app_schema, name)


def restore_checks(r: Reader) -> RestoreChecks:
    tables = r.strings("restoreCheckTables")
    for table in tables:
        r.check(bool(re.fullmatch(_QUALIFIED, table)), "restoreCheckTables", table,
                "each entry must be a lowercase table name (in the app schema) or schema.table, e.g. orders or app.orders")
    r.check(len(set(tables)) == len(tables), "restoreCheckTables", list(tables), "must not list a table twice")
    migration = r.string("restoreMigrationTable")
    name = migration.rpartition(".")[2]
    r.check(migration in (DETECT, NO_MIGRATIONS) or (bool(re.fullmatch(_QUALIFIED, migration)) and name in MIGRATION_TABLES),
            "restoreMigrationTable", migration,
            f"must be empty (detect), none, or one of {', '.join(MIGRATION_TABLES)} (optionally schema-qualified)")
    return RestoreChecks(check_tables=tables, migration_table=migration)
