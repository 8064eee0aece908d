from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run in a transaction. When it fails, it leaves its index
    # behind, invalid, and this migration pending: the next attempt fails with "already exists".
    atomic = False

    dependencies = [("indexapp", "0001_initial")]

    operations = [
        AddIndexConcurrently("order", models.Index(fields=["email"], name="indexapp_order_email_idx")),
    ]
