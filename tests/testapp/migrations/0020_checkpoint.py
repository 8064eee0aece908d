from django.db import migrations, models
import django.db.models.deletion
from tests.testapp.checkpoints import checkpoint


class Migration(migrations.Migration):
    dependencies = [
        ('testapp', '0019_book_unique_title_author'),
    ]

    operations = [
        checkpoint("0020_checkpoint"),
    ]
