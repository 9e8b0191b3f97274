"""WSGI entry point: gunicorn serves bench.peers.django_admin.wsgi:application."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peers.django_admin.settings")

application = get_wsgi_application()
