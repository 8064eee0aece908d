from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('testapp', '0014_review_created'),
    ]

    operations = [
        migrations.AddField("book", "price", models.DecimalField(decimal_places=2, max_digits=8, null=True, blank=True)),
    ]
