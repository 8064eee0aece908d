from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('testapp', '0016_alter_author_name'),
    ]

    operations = [
        migrations.RenameField("review", "body", "text"),
    ]
