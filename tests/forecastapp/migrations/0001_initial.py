from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Customer",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=50)),
                ("email", models.CharField(max_length=100, null=True)),
                ("nickname", models.CharField(max_length=20, null=True)),
            ],
        ),
        migrations.CreateModel(
            name="Tag",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=30)),
            ],
        ),
        migrations.CreateModel(
            name="Item",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("customer", models.ForeignKey(on_delete=models.CASCADE, to="forecastapp.customer")),
                ("code", models.CharField(max_length=20)),
                ("quantity", models.IntegerField()),
                ("note", models.CharField(max_length=50, null=True)),
                ("price", models.DecimalField(decimal_places=2, max_digits=10)),
                ("legacy", models.CharField(max_length=20, null=True)),
                ("flag", models.BooleanField(null=True)),
                ("number", models.BigIntegerField()),
            ],
        ),
        migrations.CreateModel(
            name="Obsolete",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("customer", models.ForeignKey(on_delete=models.CASCADE, to="forecastapp.customer")),
            ],
        ),
        migrations.CreateModel(
            name="Referenced",
            fields=[("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"))],
        ),
        migrations.CreateModel(
            name="Referrer",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("referenced", models.ForeignKey(on_delete=models.CASCADE, to="forecastapp.referenced")),
            ],
        ),
    ]
