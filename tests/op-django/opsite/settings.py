"""Settings of the test OpenID Provider (django-oauth-toolkit), for orgsso's tests only.

`server.py` sets the environment this reads before Django starts: the issuer (it knows the port
only once it has bound it), the SQLite file in a temporary directory, and an RSA key made for
this process. Nothing here is fit for production (DEBUG off, but a throwaway SECRET_KEY).
"""

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent

SECRET_KEY = os.environ["OP_DJANGO_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
    "opsite",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "opsite.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [HERE / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["OP_DJANGO_DB"],
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "/static/"
LOGIN_URL = "/accounts/login/"
# Fast hashing: the tests create users at every start.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}

OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": os.environ["OP_DJANGO_RSA_KEY"],
    # The issuer is what the tests connect orgsso to: http://127.0.0.1:<port>/o.
    "OIDC_ISS_ENDPOINT": os.environ["OP_DJANGO_ISSUER"],
    "OIDC_RP_INITIATED_LOGOUT_ENABLED": True,
    # Ask "log out of the OP too?" only when the spec requires it (no id_token_hint, or a hint
    # for another user), so a relying party that sends id_token_hint logs out without a form.
    "OIDC_RP_INITIATED_LOGOUT_ALWAYS_PROMPT": False,
    "PKCE_REQUIRED": True,
    "OAUTH2_VALIDATOR_CLASS": "opsite.validator.ClaimsValidator",
    "SCOPES": {
        "openid": "OpenID Connect",
        "email": "Email address",
        "profile": "Name",
        "groups": "Group memberships",
    },
    "DEFAULT_SCOPES": ["openid"],
    # RFC 9207 `iss` on authorization responses: off by default in django-oauth-toolkit 3.x;
    # server.py turns it on when asked (OP_DJANGO_AUTHZ_ISS=1).
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": os.environ.get("OP_DJANGO_AUTHZ_ISS") == "1",
}
