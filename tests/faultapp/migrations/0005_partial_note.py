"""A plain column on another table than the counter: applying it never waits for a holder
whose data migration (0002) still has the counter table open in a transaction."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("faultapp", "0004_nonatomic")]

    operations = [
        migrations.AddField("partial", "note", models.CharField(default="", max_length=20)),
    ]
