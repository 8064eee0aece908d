"""Every form of statement Django generates for the common operations, on a table with rows."""

from django.db import migrations, models
from django.db.models import F
from django.db.models.functions import Now, Random


def forwards(apps, schema_editor):
    pass


class Migration(migrations.Migration):
    dependencies = [("forecastapp", "0001_initial")]

    operations = [
        migrations.AddField("item", "extra", models.IntegerField(null=True)),
        migrations.AddField("item", "score", models.IntegerField(default=0)),
        migrations.AlterField("item", "quantity", models.BigIntegerField()),
        migrations.AlterField("item", "code", models.CharField(max_length=40)),
        migrations.AlterField("item", "note", models.CharField(max_length=50, default="")),
        migrations.AlterField("item", "price", models.DecimalField(decimal_places=2, max_digits=12)),
        migrations.AlterField("customer", "email", models.CharField(max_length=100)),
        migrations.AddIndex("item", models.Index(fields=["code"], name="item_code_idx")),
        # Renamed before anything references it: Django rewrites the foreign keys to a renamed
        # model from what it introspects, which a dry run cannot see yet.
        migrations.RenameModel("Tag", "Label"),
        migrations.AddField(
            "item",
            "tag",
            models.ForeignKey(null=True, on_delete=models.SET_NULL, to="forecastapp.label"),
        ),
        migrations.RemoveField("item", "legacy"),
        migrations.RenameField("item", "flag", "active"),
        migrations.AddConstraint(
            "item", models.CheckConstraint(condition=models.Q(quantity__gte=0), name="item_quantity_ck")
        ),
        migrations.AddConstraint(
            "item", models.UniqueConstraint(fields=["customer", "code"], name="item_customer_code_uq")
        ),
        migrations.RemoveConstraint("item", "item_customer_code_uq"),
        migrations.DeleteModel("Obsolete"),
        migrations.CreateModel(
            name="Order",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("customer", models.ForeignKey(on_delete=models.CASCADE, to="forecastapp.customer")),
                ("total", models.DecimalField(decimal_places=2, max_digits=10)),
            ],
        ),
        migrations.AlterField("item", "code", models.CharField(max_length=40, db_comment="The item's code")),
        migrations.AlterModelTableComment("item", "Items on sale"),
        migrations.RenameIndex("item", new_name="item_code_ix", old_name="item_code_idx"),
        migrations.RemoveIndex("item", "item_code_ix"),
        migrations.AddField("item", "code2", models.CharField(max_length=10, null=True, unique=True)),
        migrations.AddField("item", "rand", models.FloatField(db_default=Random())),
        migrations.AddField("item", "stamp", models.DateTimeField(db_default=Now())),
        migrations.AddField(
            "item",
            "total",
            models.GeneratedField(
                expression=F("quantity") * F("price"),
                output_field=models.DecimalField(decimal_places=2, max_digits=24),
                db_persist=True,
            ),
        ),
        migrations.RunSQL("UPDATE forecastapp_item SET extra = 1", migrations.RunSQL.noop),
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
