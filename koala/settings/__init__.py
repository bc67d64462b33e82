"""`koala.settings` is the production configuration; tests use `koala.settings.test`."""
from .production import *  # noqa: F401,F403
