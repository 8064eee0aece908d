from django.db import migrations, models


class Migration(migrations.Migration):
    # Reversed newest operation first: the column is dropped (kept, on MySQL/MariaDB), then the
    # reverse SQL fails. Undoing it stops halfway.
    dependencies = [("undoapp", "0001_initial")]

    operations = [
        migrations.RunSQL("SELECT 1", reverse_sql="SELECT no_such_column FROM undoapp_crate"),
        migrations.AddField("crate", "size", models.IntegerField(null=True)),
    ]
