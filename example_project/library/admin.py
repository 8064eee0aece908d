from __future__ import annotations

from django.contrib import admin

from library.models import Author, Book


@admin.register(Author)
class AuthorAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "slug", "created_at")
    search_fields = ("name",)


@admin.register(Book)
class BookAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("title", "author", "published_on", "isbn")
    list_filter = ("published_on",)
    search_fields = ("title", "isbn", "author__name")
