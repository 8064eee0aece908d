from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('testapp', '0017_rename_review_body'),
    ]

    operations = [
        migrations.AddConstraint("review", models.CheckConstraint(condition=models.Q(rating__gte=1, rating__lte=5), name="testapp_review_rating_1_to_5")),
    ]
