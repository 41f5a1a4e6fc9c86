"""Master keys held in a KMS or an HSM: the public ``Provider`` contract and the providers that
ship (``AwsKms``, ``Pkcs11``). Each provider imports its client library (boto3, python-pkcs11)
only when it is used, so installing neither costs nothing.
"""

from .aws_kms import AwsKms
from .pkcs11 import Pkcs11
from .provider import Provider, key_context

__all__ = ["AwsKms", "Pkcs11", "Provider", "key_context"]
