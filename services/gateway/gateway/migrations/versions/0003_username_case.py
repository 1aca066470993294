"""User names are unique regardless of case: `Admin` and `admin` would be two accounts to a database
but one person to everyone reading a log or a user list.

The migration adds a unique index on lower(username) (SQLite and PostgreSQL both index expressions).
If names that differ only in case already exist it changes nothing and stops, naming them: which of
the accounts is the real one is for a maintainer to decide (rename or delete the others, then run
`migrate` again); merging them silently could hand one person's tokens to another. Failed-login rows
(the login limit's short memory) are lower-cased, as the gateway now counts them.

Revision ID: gateway_0003
Revises: gateway_0002
"""
import sqlalchemy as sa
from alembic import op

revision = "gateway_0003"
down_revision = "gateway_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        'SELECT lower(username), username FROM "user" WHERE lower(username) IN '
        '(SELECT lower(username) FROM "user" GROUP BY lower(username) HAVING count(*) > 1) '
        "ORDER BY lower(username), username")).all()
    if rows:
        groups: dict[str, list[str]] = {}
        for key, name in rows:
            groups.setdefault(key, []).append(name)
        listed = "; ".join(" = ".join(repr(n) for n in names) for names in groups.values())
        raise RuntimeError(
            "gateway migration 0003 (case-insensitive user names) stopped: these accounts differ only in case: "
            f"{listed}. Keep one of each group: rename the others (UPDATE \"user\" SET username = ... WHERE "
            "id = ...) or delete them, then run the migration again. Nothing was changed.")
    op.create_index("uq_user_username_lower", "user", [sa.text("lower(username)")], unique=True)
    op.execute(sa.text("UPDATE login_failure SET username = lower(username)"))


def downgrade() -> None:
    op.drop_index("uq_user_username_lower", table_name="user")
