from django.contrib import admin

from .models import Person


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    # "=ssn": an exact (iexact) search, which the blind index answers.
    search_fields = ["=ssn", "name"]
    fields = ["name", "ssn", "email"]
