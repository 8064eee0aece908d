from __future__ import annotations

from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    bio = models.TextField(blank=True)
    slug = models.SlugField(max_length=120, blank=True, default="")
    active = models.BooleanField(default=True)


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)


class Book(models.Model):
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    published = models.DateField(null=True, blank=True)
    isbn = models.CharField(max_length=13, blank=True, default="")
    tags = models.ManyToManyField(Tag, blank=True, related_name="books")
    price = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)

    class Meta:
        indexes = (models.Index(fields=["title"], name="testapp_book_title_idx"),)
        constraints = (
            models.UniqueConstraint(
                fields=("title", "author"), name="testapp_book_unique_title_author"
            ),
        )


class Review(models.Model):
    book = models.ForeignKey(Book, on_delete=models.CASCADE, related_name="reviews")
    rating = models.PositiveSmallIntegerField()
    text = models.TextField(blank=True)
    created = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = (
            models.CheckConstraint(
                condition=models.Q(rating__gte=1, rating__lte=5),
                name="testapp_review_rating_1_to_5",
            ),
        )
