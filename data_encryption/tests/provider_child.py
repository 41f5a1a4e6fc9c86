"""A process of its own for ``test_master_key_moves_operations``: under the master-key provider
given as JSON (the only master key), it reads the key rows' metadata verdicts before anything is
unwrapped, then loads its key ring, audits both key tables and runs this app's database checks,
and prints it all as JSON.

Run as ``python -m data_encryption.tests.provider_child '<provider setting as JSON>'`` with the
environment from ``processes.child_environment()``.
"""

import json
import sys


def report(setting):
    import django

    django.setup()
    from django.core.checks import run_checks
    from django.test.utils import override_settings

    from data_encryption.key_audit import audit_data_keys, audit_index_keys, metadata_verdict
    from data_encryption.keys import warm_up_key_ring
    from data_encryption.models import DataKey

    with override_settings(
        DATA_ENCRYPTION_MASTER_KEY_PROVIDER=setting,
        DATA_ENCRYPTION_MASTER_KEY_FALLBACKS=[],
        DB_ENCRYPTION_KEY=None,
        DB_ENCRYPTION_KEY_FALLBACKS=[],
    ):
        # First, with nothing unwrapped: the master key must find its integrity secret itself.
        cold = {row.hex_id: metadata_verdict(row) for row in DataKey.objects.all()}
        ring = warm_up_key_ring()
        return {
            "cold": cold,
            "ring": sorted(f"{key_id:08x}" for key_id in ring.ciphers),
            "data": {a.hex_id: [a.metadata, a.unwraps] for a in audit_data_keys("default")},
            "index": {a.hex_id: [a.metadata, a.unwraps] for a in audit_index_keys("default")},
            "checks": {
                message.id: message.msg
                for message in run_checks(databases=["default"])
                if (message.id or "").startswith("data_encryption.")
            },
        }


if __name__ == "__main__":
    print(json.dumps(report(json.loads(sys.argv[1]))))
