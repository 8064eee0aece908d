from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models

from tests.forecastapp.operations import OnPostgres


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("forecastapp", "0005_postgres_forms")]

    operations = [
        OnPostgres(AddIndexConcurrently("item", models.Index(fields=["score"], name="item_score_cix"))),
        OnPostgres(RemoveIndexConcurrently("item", "item_score_cix")),
    ]
