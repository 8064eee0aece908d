from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('testapp', '0011_tag'),
    ]

    operations = [
        migrations.AddField("book", "tags", models.ManyToManyField(blank=True, related_name="books", to="testapp.tag")),
    ]
