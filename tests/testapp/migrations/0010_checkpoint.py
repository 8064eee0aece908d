from django.db import migrations, models
import django.db.models.deletion
from tests.testapp.checkpoints import checkpoint


class Migration(migrations.Migration):
    dependencies = [
        ('testapp', '0009_book_title_index'),
    ]

    operations = [
        checkpoint("0010_checkpoint"),
    ]
