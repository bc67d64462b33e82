"""Production: everything comes from the environment, with safe defaults."""
from .base import *  # noqa: F401,F403
from .base import DEBUG
from .env import env_bool

SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG and SITE_URL.startswith("https"))  # noqa: F405
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
