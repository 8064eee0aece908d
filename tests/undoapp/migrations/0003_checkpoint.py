from django.db import migrations

from tests.testapp.checkpoints import checkpoint


class Migration(migrations.Migration):
    dependencies = [("undoapp", "0002_crate_size")]

    operations = [checkpoint("undoapp_0003")]
