from django.db import migrations

from tests.testapp.checkpoints import checkpoint


class Migration(migrations.Migration):
    dependencies = [
        ("testapp", "0022_seed_tags"),
    ]

    operations = [
        checkpoint("0023_final_checkpoint"),
    ]
