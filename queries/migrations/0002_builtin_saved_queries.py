from django.db import migrations


def install_builtins(apps, schema_editor):
    """Organizations created before saved queries existed get the built-ins too."""
    from queries.builtins import BUILTIN_QUERIES

    Organization = apps.get_model("organizations", "Organization")
    SavedQuery = apps.get_model("queries", "SavedQuery")
    SavedQuery.objects.bulk_create(
        [SavedQuery(organization_id=organization_id, name=builtin["name"], description=builtin["description"],
                    query=builtin["query"], builtin=True)
         for organization_id in Organization.objects.values_list("id", flat=True) for builtin in BUILTIN_QUERIES],
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):
    dependencies = [("queries", "0001_initial")]

    operations = [migrations.RunPython(install_builtins, migrations.RunPython.noop)]
