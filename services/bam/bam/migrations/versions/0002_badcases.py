"""Badcases, occurrences, outcomes, triage history, and full-text search (PostgreSQL GIN, SQLite FTS5)

Revision ID: bam_0002
Revises: bam_0001
Create Date: 2026-11-27 23:48:06.694049
"""
import sqlalchemy as sa
from alembic import op

from mlife_shared.db import UTCDateTime

revision = 'bam_0002'
down_revision = 'bam_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('badcase',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('function', sa.String(length=200), nullable=False),
    sa.Column('system_version', sa.String(length=100), nullable=True),
    sa.Column('model_name', sa.String(length=200), nullable=True),
    sa.Column('model_version', sa.String(length=100), nullable=True),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('reporter', sa.String(length=100), nullable=True),
    sa.Column('client_id', sa.String(length=200), nullable=True),
    sa.Column('device_id', sa.String(length=200), nullable=True),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('description_norm', sa.Text(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('data_refs', sa.JSON(), nullable=False),
    sa.Column('data_md5', sa.String(length=32), nullable=True),
    sa.Column('media_type', sa.String(length=20), nullable=True),
    sa.Column('phash', sa.BigInteger(), nullable=True),
    sa.Column('prediction', sa.JSON(), nullable=True),
    sa.Column('ground_truth', sa.JSON(), nullable=True),
    sa.Column('prediction_label', sa.String(length=200), nullable=True),
    sa.Column('ground_truth_label', sa.String(length=200), nullable=True),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('match_key', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('severity', sa.String(length=10), nullable=False),
    sa.Column('priority', sa.Float(), nullable=False),
    sa.Column('priority_score', sa.Float(), nullable=False),
    sa.Column('priority_override', sa.Float(), nullable=True),
    sa.Column('owner', sa.String(length=100), nullable=True),
    sa.Column('frequency', sa.Integer(), nullable=False),
    sa.Column('first_seen', UTCDateTime, nullable=False),
    sa.Column('last_seen', UTCDateTime, nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.Column('fixed_at', UTCDateTime, nullable=True),
    sa.Column('regressed_at', UTCDateTime, nullable=True),
    sa.Column('test_data_requested_at', UTCDateTime, nullable=True),
    sa.Column('search_text', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_badcase')),
    sa.UniqueConstraint('fingerprint', name=op.f('uq_badcase_fingerprint'))
    )
    with op.batch_alter_table('badcase', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_badcase_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_badcase_data_md5'), ['data_md5'], unique=False)
        batch_op.create_index(batch_op.f('ix_badcase_first_seen'), ['first_seen'], unique=False)
        batch_op.create_index(batch_op.f('ix_badcase_fixed_at'), ['fixed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_badcase_function'), ['function'], unique=False)
        batch_op.create_index(batch_op.f('ix_badcase_ground_truth_label'), ['ground_truth_label'], unique=False)
        batch_op.create_index(batch_op.f('ix_badcase_last_seen'), ['last_seen'], unique=False)
        batch_op.create_index(batch_op.f('ix_badcase_match_key'), ['match_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_badcase_media_type'), ['media_type'], unique=False)
        batch_op.create_index(batch_op.f('ix_badcase_model_name'), ['model_name'], unique=False)
        batch_op.create_index(batch_op.f('ix_badcase_model_version'), ['model_version'], unique=False)
        batch_op.create_index(batch_op.f('ix_badcase_owner'), ['owner'], unique=False)
        batch_op.create_index(batch_op.f('ix_badcase_prediction_label'), ['prediction_label'], unique=False)
        batch_op.create_index(batch_op.f('ix_badcase_priority'), ['priority'], unique=False)
        batch_op.create_index(batch_op.f('ix_badcase_regressed_at'), ['regressed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_badcase_source'), ['source'], unique=False)
        batch_op.create_index(batch_op.f('ix_badcase_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_badcase_system_version'), ['system_version'], unique=False)

    op.create_table('badcase_tag',
    sa.Column('badcase_id', sa.Uuid(), nullable=False),
    sa.Column('tag', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['badcase_id'], ['badcase.id'], name=op.f('fk_badcase_tag_badcase_id_badcase'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('badcase_id', 'tag', name=op.f('pk_badcase_tag'))
    )
    with op.batch_alter_table('badcase_tag', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_badcase_tag_tag'), ['tag'], unique=False)

    op.create_table('occurrence',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('badcase_id', sa.Uuid(), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('reporter', sa.String(length=100), nullable=True),
    sa.Column('client_id', sa.String(length=200), nullable=True),
    sa.Column('device_id', sa.String(length=200), nullable=True),
    sa.Column('deployment_id', sa.String(length=64), nullable=True),
    sa.Column('model_name', sa.String(length=200), nullable=True),
    sa.Column('model_version', sa.String(length=100), nullable=True),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('prediction', sa.JSON(), nullable=True),
    sa.Column('event_id', sa.Uuid(), nullable=True),
    sa.Column('reported_at', UTCDateTime, nullable=False),
    sa.ForeignKeyConstraint(['badcase_id'], ['badcase.id'], name=op.f('fk_occurrence_badcase_id_badcase'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_occurrence'))
    )
    with op.batch_alter_table('occurrence', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_occurrence_badcase_id'), ['badcase_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_occurrence_reported_at'), ['reported_at'], unique=False)

    op.create_table('outcome',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('badcase_id', sa.Uuid(), nullable=False),
    sa.Column('model_name', sa.String(length=200), nullable=False),
    sa.Column('model_version', sa.String(length=100), nullable=False),
    sa.Column('task_id', sa.Uuid(), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('prediction', sa.JSON(), nullable=True),
    sa.Column('recorded_at', UTCDateTime, nullable=False),
    sa.ForeignKeyConstraint(['badcase_id'], ['badcase.id'], name=op.f('fk_outcome_badcase_id_badcase'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outcome'))
    )
    with op.batch_alter_table('outcome', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outcome_badcase_id'), ['badcase_id'], unique=False)
        batch_op.create_index('ix_outcome_model', ['model_name', 'model_version'], unique=False)
        batch_op.create_index(batch_op.f('ix_outcome_recorded_at'), ['recorded_at'], unique=False)

    op.create_table('triage_change',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('badcase_id', sa.Uuid(), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('field', sa.String(length=40), nullable=False),
    sa.Column('old', sa.JSON(), nullable=True),
    sa.Column('new', sa.JSON(), nullable=True),
    sa.Column('changed_at', UTCDateTime, nullable=False),
    sa.ForeignKeyConstraint(['badcase_id'], ['badcase.id'], name=op.f('fk_triage_change_badcase_id_badcase'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_triage_change'))
    )
    with op.batch_alter_table('triage_change', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_triage_change_badcase_id'), ['badcase_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_triage_change_changed_at'), ['changed_at'], unique=False)



    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE INDEX ix_badcase_search ON badcase USING gin (to_tsvector('simple', search_text))")
    else:
        op.execute("CREATE VIRTUAL TABLE badcase_fts USING fts5(search_text, content='badcase', content_rowid='rowid')")
        op.execute("""CREATE TRIGGER badcase_fts_insert AFTER INSERT ON badcase BEGIN
            INSERT INTO badcase_fts(rowid, search_text) VALUES (new.rowid, new.search_text); END""")
        op.execute("""CREATE TRIGGER badcase_fts_delete AFTER DELETE ON badcase BEGIN
            INSERT INTO badcase_fts(badcase_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text); END""")
        op.execute("""CREATE TRIGGER badcase_fts_update AFTER UPDATE OF search_text ON badcase BEGIN
            INSERT INTO badcase_fts(badcase_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
            INSERT INTO badcase_fts(rowid, search_text) VALUES (new.rowid, new.search_text); END""")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TABLE IF EXISTS badcase_fts")
    with op.batch_alter_table('triage_change', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_triage_change_changed_at'))
        batch_op.drop_index(batch_op.f('ix_triage_change_badcase_id'))

    op.drop_table('triage_change')
    with op.batch_alter_table('outcome', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outcome_recorded_at'))
        batch_op.drop_index('ix_outcome_model')
        batch_op.drop_index(batch_op.f('ix_outcome_badcase_id'))

    op.drop_table('outcome')
    with op.batch_alter_table('occurrence', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_occurrence_reported_at'))
        batch_op.drop_index(batch_op.f('ix_occurrence_badcase_id'))

    op.drop_table('occurrence')
    with op.batch_alter_table('badcase_tag', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_badcase_tag_tag'))

    op.drop_table('badcase_tag')
    with op.batch_alter_table('badcase', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_badcase_system_version'))
        batch_op.drop_index(batch_op.f('ix_badcase_status'))
        batch_op.drop_index(batch_op.f('ix_badcase_source'))
        batch_op.drop_index(batch_op.f('ix_badcase_regressed_at'))
        batch_op.drop_index(batch_op.f('ix_badcase_priority'))
        batch_op.drop_index(batch_op.f('ix_badcase_prediction_label'))
        batch_op.drop_index(batch_op.f('ix_badcase_owner'))
        batch_op.drop_index(batch_op.f('ix_badcase_model_version'))
        batch_op.drop_index(batch_op.f('ix_badcase_model_name'))
        batch_op.drop_index(batch_op.f('ix_badcase_media_type'))
        batch_op.drop_index(batch_op.f('ix_badcase_match_key'))
        batch_op.drop_index(batch_op.f('ix_badcase_last_seen'))
        batch_op.drop_index(batch_op.f('ix_badcase_ground_truth_label'))
        batch_op.drop_index(batch_op.f('ix_badcase_function'))
        batch_op.drop_index(batch_op.f('ix_badcase_fixed_at'))
        batch_op.drop_index(batch_op.f('ix_badcase_first_seen'))
        batch_op.drop_index(batch_op.f('ix_badcase_data_md5'))
        batch_op.drop_index(batch_op.f('ix_badcase_created_at'))

    op.drop_table('badcase')
