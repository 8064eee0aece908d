"""A column, then a step that can fail: on MySQL the column stays when the step fails."""

from django.db import migrations, models

from tests.testapp.checkpoints import checkpoint


class Migration(migrations.Migration):
    dependencies = [("halfapp", "0001_initial")]

    operations = [
        migrations.AddField("widget", "colour", models.CharField(default="", max_length=20)),
        checkpoint("halfapp_0002"),
    ]
