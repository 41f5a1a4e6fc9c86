"""Moving the master key from a local key into a PKCS#11 HSM (the SoftHSM2 token the test command
initialises) by the documented procedure, proven as the KMS moves are (``test_master_key_moves``):
the key rows, key rings loaded afresh with the local key gone, and the local key alone opening
nothing.
"""

from django.test import TestCase

from data_encryption.tests.hsm_token import SoftHsmTestCase, provider_setting
from data_encryption.tests.provider_moves import assert_local_to_provider_move, backup_settings
from data_encryption.tests.utils import FreshKeyRingMixin


class LocalToHsmTests(FreshKeyRingMixin, SoftHsmTestCase, TestCase):
    @backup_settings()
    def test_local_to_hsm_by_the_documented_procedure(self):
        assert_local_to_provider_move(
            self,
            provider_setting(self.options),
            self.provider.fingerprint,
            self.provider.description,
        )
