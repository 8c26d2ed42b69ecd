"""Which claims the test OP releases, and under which scope.

django-oauth-toolkit puts the claims from `get_additional_claims` both in the ID token and in
the userinfo answer, each filtered by `oidc_claim_scope`: a claim whose scope is not listed
there (such as `groups`, which no OIDC standard scope covers) is never released. The groups
come from the user's Django groups. The request-agnostic form (callables taking the request)
lets DOT list the claims in discovery's `claims_supported`.
"""

from oauth2_provider.oauth2_validators import OAuth2Validator


class ClaimsValidator(OAuth2Validator):
    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "groups": "groups"}

    def get_additional_claims(self):
        return {
            "email": lambda request: request.user.email,
            "email_verified": lambda request: True,
            "name": lambda request: request.user.get_full_name() or request.user.username,
            "preferred_username": lambda request: request.user.username,
            "groups": lambda request: sorted(g.name for g in request.user.groups.all()),
        }
