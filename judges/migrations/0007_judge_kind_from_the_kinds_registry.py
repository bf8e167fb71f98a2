# A judge's kind is the name of a registered kind (judges.kinds), checked there: a new kind needs no model change.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('judges', '0006_promotion_bar_moves_here'),
    ]

    operations = [
        migrations.AlterField(
            model_name='judge',
            name='kind',
            field=models.CharField(max_length=16),
        ),
    ]
