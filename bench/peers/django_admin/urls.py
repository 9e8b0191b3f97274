"""The admin at /admin/, and nothing else."""

from django.contrib import admin
from django.urls import path

# This project is not an installed app, so admin autodiscovery would not find its admin
# module: import it, to replace the stock User admin before the URLs are built.
import bench.peers.django_admin.admin  # noqa: F401

urlpatterns = [path("admin/", admin.site.urls)]
