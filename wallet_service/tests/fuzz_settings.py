"""Settings of the server that test_schemathesis.py fuzzes: the service's own, with a fast hasher.

PBKDF2's iterations take half a second per signup or login (a wrong one too), which would be most
of a fuzzing run; the hasher changes how long checking a password takes, not what the API answers.
The root conftest.py does the same for the in-process tests.
"""

from wallet_service.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
