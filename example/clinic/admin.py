from django.contrib import admin

from .models import Customer, Patient


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ("name", "insurance_number", "birth_date")


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("name",)
    exclude = ("_ssn",)
