"""The demo: encrypt through both patterns, show what the database holds beside what Python
reads, and the things a user meets on the first day."""

import datetime
from typing import Any

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.exceptions import FieldError
from django.core.management.base import BaseCommand
from django.db import IntegrityError, connection

from clinic.models import Customer, Patient
from data_encryption.master_key import master_keys
from data_encryption.models import DataKey
from data_encryption.services import EncryptionService, KeyRotationService


def raw_column(model: Any, column: str, pk: int) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {model._meta.db_table} WHERE id = %s", [pk])
        return bytes(cursor.fetchone()[0])


def shown(raw: bytes, width: int = 24) -> str:
    return f"{raw[:width].hex()}… ({len(raw)} bytes)"


class Command(BaseCommand):
    help = "Run the django-data-encryption demo on the example project's SQLite database."

    def handle(self, *args: Any, **options: Any) -> None:
        out, style = self.stdout.write, self.style
        Customer.objects.all().delete()
        Patient.objects.all().delete()

        out(style.MIGRATE_HEADING("1. Keys"))
        master = master_keys()[0]
        out(f"  master key  DB_ENCRYPTION_KEY, fingerprint {master.fingerprint} (never printed)")
        for key in DataKey.objects.all():
            created = f"{key.created_at:%Y-%m-%d %H:%M}"
            out(f"  data key    {key.hex_id}  {key.state:<12} created {created}")

        out(style.MIGRATE_HEADING("\n2. The property pattern: Customer._ssn is a BinaryField"))
        for name, ssn in [("Ada Lovelace", "123-45-6789"), ("Alan Turing", "987-65-4321")]:
            customer = Customer(name=name)
            customer.ssn = ssn
            customer.save()
        out(f"  {'name':<14} {'stored in customer._ssn (hex)':<62} customer.ssn")
        for customer in Customer.objects.order_by("name"):
            raw = raw_column(Customer, "_ssn", customer.pk)
            out(f"  {customer.name:<14} {shown(raw):<62} {customer.ssn}")

        out(style.MIGRATE_HEADING("\n3. Encrypted fields: Patient.diagnosis, .insurance_number..."))
        Patient.objects.create(
            name="Grace Hopper",
            diagnosis="Seasonal allergies",
            insurance_number="INS-0042-77",
            birth_date=datetime.date(1906, 12, 9),
            allergies=["pollen", "dust"],
        )
        patient = Patient.objects.get()
        for field in ("diagnosis", "insurance_number", "birth_date", "allergies"):
            raw = raw_column(Patient, field, patient.pk)
            out(f"  {field:<17} {shown(raw, 20):<54} {getattr(patient, field)!r}")

        out(style.MIGRATE_HEADING("\n4. Every value names its key in a header, read without a key"))
        raw = raw_column(Customer, "_ssn", Customer.objects.first().pk)
        out(f"  key id of a stored SSN: {EncryptionService.key_id_of(raw):08x}")
        out(f"  ASCII form for text columns: {EncryptionService.to_ascii(raw)}")

        out(style.MIGRATE_HEADING("\n5. Values from a plain Fernet integration still decrypt"))
        legacy = Fernet(settings.DB_ENCRYPTION_KEY).encrypt(b"555-12-3456")
        out(f"  {legacy[:32].decode()}…  ->  {EncryptionService.decrypt(legacy)}")

        out(
            style.MIGRATE_HEADING(
                "\n6. Payload tokens (PAYLOAD_ENCRYPTION_KEY), URL-safe, for one purpose, expiring"
            )
        )
        token = EncryptionService.encrypt_payload({"patient": patient.pk}, purpose="share")
        out(f"  token: {token[:48]}…")
        payload = EncryptionService.decrypt_payload(token, purpose="share", max_age=3600)
        out(f"  decrypt_payload(token, purpose='share', max_age=3600) -> {payload}")

        out(
            style.MIGRATE_HEADING(
                "\n7. Search: a blind index finds exact values; nothing else is answered"
            )
        )
        raw = raw_column(Patient, "insurance_number_bidx_a", patient.pk)
        out(f"  insurance_number_bidx_a (HMAC-SHA256/128 of 'ins-0042-77'): {raw.hex()}")
        found = Patient.objects.get(insurance_number=" ins-0042-77 ")
        out(f"  get(insurance_number=' ins-0042-77 ') -> {found.name}")
        try:
            Patient.objects.create(name="Twin", diagnosis="-", insurance_number="INS-0042-77")
        except IntegrityError:
            out("  a second patient with INS-0042-77 -> IntegrityError (unique=True)")
        try:
            Patient.objects.filter(insurance_number__startswith="INS").count()
        except FieldError as exc:
            out(f"  FieldError: {str(exc)[:110]}…")
        out(
            f"  filter(birth_date__isnull=False).count() -> "
            f"{Patient.objects.filter(birth_date__isnull=False).count()}"
        )
        out(style.MIGRATE_HEADING("\n8. Rotate the data key (what the monthly job does)"))
        out("  The security team's email follows (EMAIL_BACKEND is the console backend):\n")
        report = KeyRotationService().rotate_encryption_key_monthly()
        out(style.MIGRATE_HEADING("  The report:"))
        shown_keys = (
            "status",
            "timestamp",
            "models_processed",
            "records_processed",
            "failed_records",
            "records_reencrypted",
            "new_key_id",
            "retired_key_ids",
            "key_backup_path",
        )
        for name in shown_keys:
            out(f"  {name:<20} {report[name]}")
        for label, counts in report["census"].items():
            for field_name, per_key in counts.items():
                out(f"  census {label}.{field_name}: {per_key}")
        customer = Customer.objects.order_by("name").first()
        raw = raw_column(Customer, "_ssn", customer.pk)
        out(
            f"  {customer.name}'s SSN is now under key {EncryptionService.key_id_of(raw):08x}: "
            f"{customer.ssn}"
        )
        out(style.SUCCESS("\nDemo finished."))
