"""Test OpenID Provider for orgsso's integration tests: django-oauth-toolkit on 127.0.0.1.

Started by tests/api/django_op.rs (DjangoOp::start) with the interpreter of the virtualenv it
makes in tests/op-django/.venv from requirements.txt. Configuration in the environment variable
OP_DJANGO_CONFIG:

    {
      "port": 0,                 // 0 = a free port; otherwise exactly this one
      "authz_iss": false,        // RFC 9207 `iss` on authorization responses (off by default in DOT)
      "clients": [{"client_id": "...", "client_secret": "...",
                   "redirect_uris": ["http://127.0.0.1:1234/sso/callback"],
                   "post_logout_redirect_uris": ["http://127.0.0.1:1234/signed-out"],
                   "algorithm": "RS256"}],   // optional: "HS256", or "" (no OIDC support)
      "users": {"alice": {"password": "...", "email": "...", "name": "Alice Example",
                          "groups": ["admins"]}}
    }

What it does at start: makes an RSA-2048 signing key and a SQLite database in a temporary
directory (both gone at exit), binds 127.0.0.1, applies Django's migrations, creates the users
(with their Django groups) and one confidential authorization-code application per client
(RS256 ID tokens, consent skipped, the secret stored hashed as DOT does by default), then prints
exactly one line on stdout:

    READY {"issuer": "http://127.0.0.1:<port>/o", "port": <port>, "kid": "<kid>"}

Everything else goes to stderr, request lines without their query strings (they may carry
codes or ID tokens). It exits when stdin closes (the test process died or dropped it), or on
SIGTERM/SIGINT. To run it by hand with stdin at /dev/null, set OP_DJANGO_IGNORE_STDIN=1.
"""

import json
import os
import secrets
import shutil
import signal
import socketserver
import sys
import tempfile
import threading
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

HERE = Path(__file__).resolve().parent


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        # The request line only up to its query string: authorization and logout requests
        # carry state, codes or an id_token_hint there.
        sys.stderr.write("%s\n" % (self.command + " " + self.path.split("?", 1)[0]))


def rsa_private_pem():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def provision(config):
    from django.contrib.auth.models import Group, User
    from oauth2_provider.models import get_application_model

    for username, spec in config.get("users", {}).items():
        name = spec.get("name", "")
        first, _, last = name.partition(" ")
        user = User.objects.create_user(
            username=username,
            email=spec.get("email", ""),
            password=spec.get("password", "test-password"),
            first_name=first,
            last_name=last,
        )
        for group in spec.get("groups", []):
            user.groups.add(Group.objects.get_or_create(name=group)[0])

    Application = get_application_model()
    for c in config.get("clients", []):
        Application.objects.create(
            name=c["client_id"],
            client_id=c["client_id"],
            client_secret=c["client_secret"],
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
            redirect_uris=" ".join(c["redirect_uris"]),
            post_logout_redirect_uris=" ".join(c.get("post_logout_redirect_uris", [])),
            # "RS256" unless the test registers the application as admins sometimes do: "HS256"
            # (signed with the client secret, which must then be stored in clear) or "" (DOT's
            # default, "No OIDC support").
            algorithm=c.get("algorithm", Application.RS256_ALGORITHM),
            hash_client_secret=c.get("algorithm", "RS256") != Application.HS256_ALGORITHM,
            skip_authorization=True,
        )


def main():
    config = json.loads(os.environ.get("OP_DJANGO_CONFIG", "{}"))
    workdir = tempfile.mkdtemp(prefix="orgsso-op-django-")
    server = None
    try:
        server = make_server(
            "127.0.0.1",
            int(config.get("port", 0)),
            None,
            server_class=ThreadingWSGIServer,
            handler_class=QuietHandler,
        )
        port = server.server_address[1]
        issuer = f"http://127.0.0.1:{port}/o"

        os.environ["DJANGO_SETTINGS_MODULE"] = "opsite.settings"
        os.environ["OP_DJANGO_SECRET_KEY"] = secrets.token_urlsafe(48)
        os.environ["OP_DJANGO_DB"] = os.path.join(workdir, "op.sqlite3")
        os.environ["OP_DJANGO_RSA_KEY"] = rsa_private_pem()
        os.environ["OP_DJANGO_ISSUER"] = issuer
        os.environ["OP_DJANGO_AUTHZ_ISS"] = "1" if config.get("authz_iss") else "0"
        sys.path.insert(0, str(HERE))

        import django
        from django.core.management import call_command
        from django.core.wsgi import get_wsgi_application

        django.setup()
        call_command("migrate", interactive=False, verbosity=0)
        provision(config)

        from oauth2_provider.utils import jwk_from_pem

        kid = jwk_from_pem(os.environ["OP_DJANGO_RSA_KEY"]).thumbprint()
        server.set_app(get_wsgi_application())
        threading.Thread(target=server.serve_forever, daemon=True).start()
        sys.stdout.write("READY " + json.dumps({"issuer": issuer, "port": port, "kid": kid}) + "\n")
        sys.stdout.flush()

        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: stop.set())
        if os.environ.get("OP_DJANGO_IGNORE_STDIN") != "1":

            def wait_for_eof():
                # Discard anything written to us; only EOF matters.
                while sys.stdin.buffer.read(4096):
                    pass
                stop.set()

            threading.Thread(target=wait_for_eof, daemon=True).start()
        while not stop.wait(1.0):
            pass
    finally:
        if server is not None:
            server.server_close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
