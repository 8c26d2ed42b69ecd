//! The JOSE core every token kind is a thin policy over: strict compact-JWS parsing and header
//! rules ([`compact`]), the one strict JSON-object parser ([`json`]), algorithm allow-lists
//! ([`alg`]), verification keys and their key set ([`keys`]), the JWKS cache ([`jwks`]) and the
//! one claims policy ([`claims`]).
//!
//! The policies today: ID tokens (`oidc::idtoken`), back-channel logout tokens
//! (`oidc::logout_token`), tokens checked against an org's JWT secrets (`jwt::verify`) and
//! orgsso's own access tokens (`jwt::own_token`). Each maps
//! [`compact::JwsError`] and [`claims::ClaimError`] to its own error vocabulary, so sign-in page
//! codes and `WWW-Authenticate` reasons stay its own.
//!
//! A new token kind is a small file. Back-channel logout tokens, for example, would be:
//!
//! ```text
//! let rules = JwsRules { max_bytes: MAX_ID_TOKEN_BYTES, charset_first: true,
//!     algorithms: &offered_and_allowed, forbidden_headers: ID_TOKEN_FORBIDDEN_HEADERS,
//!     typ: TypRule::Exactly("logout+jwt") };
//! let jws = compact::parse(token, &rules).map_err(LogoutError::from)?;
//! let key = jwks.key_for(jws.alg, jws.kid.as_deref()).await?;     // the IdP's JwksCache
//! let claims = jws.verify(VerifyingKey::Jwt(&key))?.payload_object()?; // claims only once verified
//! ClaimRules { issuer: IssuerRule::Exactly(issuer),
//!     audience: AudienceRule::Includes { id: client_id, also_trusted: &[] },
//!     max_iat_age: Some(max_age), leeway, now }.check(&claims)?;
//! // then the kind's own claims: `events` has the back-channel-logout member, `sid` or
//! // `sub` present, no `nonce`, `jti` not seen before.
//! ```

pub mod alg;
pub mod claims;
pub mod compact;
pub mod json;
pub mod jwks;
pub mod keys;
