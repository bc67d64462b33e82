import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "koala.settings")

app = Celery("koala")
# Every CELERY_* Django setting configures the app, including the beat schedule.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
