"""A small catalogue, whose migrations the example project applies with ``automigrate``."""

from __future__ import annotations

from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    title = models.CharField(max_length=300)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    isbn = models.CharField("ISBN", max_length=13, blank=True)
    published_on = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ("title",)
        indexes = (
            models.Index(fields=("author", "published_on"), name="library_book_author_pub_idx"),
        )

    def __str__(self) -> str:
        return self.title
