from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run in a transaction, and waits for every transaction
    # that holds a snapshot: a migration lock taken in a transaction would deadlock here.
    atomic = False

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Event",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100)),
            ],
        ),
        AddIndexConcurrently("event", models.Index(fields=["name"], name="pgapp_event_name_idx")),
    ]
