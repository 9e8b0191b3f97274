"""Settings of the Django admin peer: a minimal project serving the stock admin.

The database comes from PEER_DATABASE_URL (postgresql://... or sqlite:///path). Production-
like otherwise: DEBUG off, persistent connections, cached templates (Django's default when
DEBUG is off), database sessions (Django's default). Static files are not served; the
benchmark times the HTML only, so the admin's CSS may 404.
"""

from __future__ import annotations

import os

from bench.peers.django_admin.database import django_database

# A fixed key is fine: this project only ever serves benchmark data on 127.0.0.1.
SECRET_KEY = "benchmark-only-not-secret-django-admin-peer-0123456789abcdefghijkl"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "bench.peers.django_admin.urls"
WSGI_APPLICATION = "bench.peers.django_admin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": django_database(os.environ["PEER_DATABASE_URL"])}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"

# Errors to stderr (gunicorn's error log), so a failing request says why.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}},
}
