"""Full-text search over message text on PostgreSQL, and a keyset index for the list.

Raw SQL, not a model index: the expression must be exactly the one dashboard.selection
queries (SearchVector("text", config="simple")), and SQLite (the demo) has no GIN.
"""

from django.db import migrations

FTS = (
    "CREATE INDEX IF NOT EXISTS message_text_fts ON dashboard_message "
    "USING gin (to_tsvector('simple'::regconfig, COALESCE(text, ''::text)))"
)
LIST = (
    "CREATE INDEX IF NOT EXISTS conversation_recent ON dashboard_conversation "
    "(last_message_at DESC, id DESC)"
)


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FTS)
        schema_editor.execute(LIST)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS message_text_fts")
        schema_editor.execute("DROP INDEX IF EXISTS conversation_recent")


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0002_team")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
