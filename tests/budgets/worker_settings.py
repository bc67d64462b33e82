"""Settings of the Celery worker processes the budgets tests start: the test settings,
but real SMTP (the test's aiosmtpd server, EMAIL_HOST/EMAIL_PORT from the environment),
the test's own queue, and retries a second apart instead of thirty."""
import os

from koala.settings.test import *  # noqa: F401,F403

EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
BUDGETS_QUEUE = os.environ["KOALA_TEST_QUEUE"]
BUDGET_ALERT_RETRY_BASE_SECONDS = 1
