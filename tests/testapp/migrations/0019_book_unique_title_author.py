from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('testapp', '0018_review_rating_check'),
    ]

    operations = [
        migrations.AddConstraint("book", models.UniqueConstraint(fields=("title", "author"), name="testapp_book_unique_title_author")),
    ]
