"""Tests: the real PostgreSQL and Redis named by DATABASE_URL / REDIS_URL."""
from .base import *  # noqa: F401,F403

SECRET_KEY = "test-only-secret-key-not-for-production-0123456789"
# Hashing test users' passwords with PBKDF2 would dominate the suite's time.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
