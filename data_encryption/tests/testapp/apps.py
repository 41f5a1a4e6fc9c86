from django.apps import AppConfig


class TestAppConfig(AppConfig):
    name = "data_encryption.tests.testapp"
    label = "data_encryption_tests"
    default_auto_field = "django.db.models.BigAutoField"
