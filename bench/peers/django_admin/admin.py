"""The user changelist as a team would set it up: Django's own UserAdmin, with the search
fields, filters and ordering a Users page needs, and nothing tuned.

This is the out-of-the-box peer: no indexes beyond those Django's migrations create (on
auth_user, only the primary key and the unique username; none on email, names, is_active or
is_staff), no custom queryset, paginator or count, the default 100 rows per page.
"""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User


class BenchUserAdmin(UserAdmin):
    list_display = ("username", "email", "first_name", "last_name", "is_staff")
    search_fields = ("username", "first_name", "last_name", "email")
    list_filter = ("is_active", "is_staff")
    ordering = ("email",)


admin.site.unregister(User)
admin.site.register(User, BenchUserAdmin)
