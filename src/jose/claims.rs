//! The one claims policy: `exp`, `nbf`, `iat`, `aud` and `iss`, with the leeway and `now`
//! passed in ([`ClaimRules`]), refusing with a typed [`ClaimError`] that each token kind maps to
//! its own words.
//!
//! [`ClaimRules::check`] runs the bearer-token order (types of every registered claim first,
//! then `exp`, `nbf`, `iat`, `aud`, `iss`). The individual checks are public so that the ID-token
//! policy can keep the order its sign-in pages have always reported (issuer and audience before
//! times; `iat` before `nbf`), which matters when an IdP's clock is off and several checks fail.
//!
//! NumericDates may be integers or finite floats; wrongly typed claims are refused, never
//! ignored. Comparisons are in seconds as f64 (exact for any realistic value), sub-second `now`
//! included.

use std::time::Duration;

use serde_json::{Map, Value};
use time::OffsetDateTime;

/// Why a token's claims were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimError {
    Missing(&'static str),
    WrongType(&'static str),
    Expired,
    NotYetValid,
    IssuedInFuture,
    /// `iat` older than [`ClaimRules::max_iat_age`] (plus leeway).
    IssuedTooLongAgo,
    BadIssuer,
    /// `aud` does not contain an expected audience.
    BadAudience,
    /// `aud` also names an audience that is not trusted ([`AudienceRule::Includes`]).
    UntrustedAudience,
}

/// What `iss` must be.
#[derive(Clone, Copy, Debug)]
pub enum IssuerRule<'a> {
    /// No check (an org secret configured without issuers). Said explicitly: an empty
    /// `OneOf` matches nothing, so a list that came out empty by mistake fails closed.
    Any,
    /// Exactly this issuer (required).
    Exactly(&'a str),
    /// One of these (required).
    OneOf(&'a [String]),
}

impl<'a> IssuerRule<'a> {
    /// An org secret's list: empty means it was configured to accept any issuer.
    pub fn any_if_empty(list: &'a [String]) -> Self {
        if list.is_empty() {
            IssuerRule::Any
        } else {
            IssuerRule::OneOf(list)
        }
    }
}

/// What `aud` must be.
#[derive(Clone, Copy, Debug)]
pub enum AudienceRule<'a> {
    /// No check (an org secret configured without audiences); see [`IssuerRule::Any`].
    Any,
    /// Shares a value with this list (required).
    OneOf(&'a [String]),
    /// Contains `id` (required), and every other value is in `also_trusted` (ID tokens).
    Includes {
        id: &'a str,
        also_trusted: &'a [String],
    },
}

impl<'a> AudienceRule<'a> {
    /// An org secret's list: empty means it was configured to accept any audience.
    pub fn any_if_empty(list: &'a [String]) -> Self {
        if list.is_empty() {
            AudienceRule::Any
        } else {
            AudienceRule::OneOf(list)
        }
    }
}

/// What a token kind expects of the registered claims. `exp` is always required.
#[derive(Clone, Copy, Debug)]
pub struct ClaimRules<'a> {
    pub issuer: IssuerRule<'a>,
    pub audience: AudienceRule<'a>,
    /// With `Some`, `iat` is required and may be at most this old (plus leeway).
    pub max_iat_age: Option<Duration>,
    /// Clock-skew allowance for `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    pub now: OffsetDateTime,
}

/// A NumericDate claim as seconds since the epoch: integer or finite float.
pub fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<f64>, ClaimError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() => Ok(Some(v)),
            _ => Err(ClaimError::WrongType(name)),
        },
        Some(_) => Err(ClaimError::WrongType(name)),
    }
}

/// A required NumericDate claim.
pub fn required_numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<f64, ClaimError> {
    numeric_date(claims, name)?.ok_or(ClaimError::Missing(name))
}

/// A string claim (JSON `null` is a wrong type).
pub fn string<'c>(
    claims: &'c Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'c str>, ClaimError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ClaimError::WrongType(name)),
    }
}

/// A required string claim.
pub fn required_string<'c>(
    claims: &'c Map<String, Value>,
    name: &'static str,
) -> Result<&'c str, ClaimError> {
    string(claims, name)?.ok_or(ClaimError::Missing(name))
}

/// `aud`: a string or an array of strings.
pub fn audiences(claims: &Map<String, Value>) -> Result<Option<Vec<&str>>, ClaimError> {
    match claims.get("aud") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.as_str()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().ok_or(ClaimError::WrongType("aud")))
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(ClaimError::WrongType("aud")),
    }
}

impl ClaimRules<'_> {
    /// The bearer-token order: types of `exp`, `nbf`, `iat`, `iss`, `sub`, `aud` first (so a
    /// wrongly typed claim is reported as such), then `exp`, `nbf`, `iat`, `aud`, `iss`.
    pub fn check(&self, claims: &Map<String, Value>) -> Result<(), ClaimError> {
        let exp = numeric_date(claims, "exp")?;
        let nbf = numeric_date(claims, "nbf")?;
        let iat = numeric_date(claims, "iat")?;
        let iss = string(claims, "iss")?;
        string(claims, "sub")?;
        let aud = audiences(claims)?;
        self.check_expiry(exp.ok_or(ClaimError::Missing("exp"))?)?;
        self.check_not_before(nbf)?;
        self.check_issued_at(iat)?;
        self.check_audience(aud.as_deref())?;
        self.check_issuer(iss)
    }

    fn now_secs(&self) -> f64 {
        self.now.unix_timestamp() as f64 + f64::from(self.now.nanosecond()) / 1e9
    }

    /// `now < exp + leeway`.
    pub fn check_expiry(&self, exp: f64) -> Result<(), ClaimError> {
        if self.now_secs() >= exp + self.leeway.as_secs_f64() {
            return Err(ClaimError::Expired);
        }
        Ok(())
    }

    /// `nbf <= now + leeway`, when present.
    pub fn check_not_before(&self, nbf: Option<f64>) -> Result<(), ClaimError> {
        if nbf.is_some_and(|nbf| self.now_secs() + self.leeway.as_secs_f64() < nbf) {
            return Err(ClaimError::NotYetValid);
        }
        Ok(())
    }

    /// `iat <= now + leeway` when present; with [`ClaimRules::max_iat_age`], required and
    /// `iat >= now - max_iat_age - leeway`.
    pub fn check_issued_at(&self, iat: Option<f64>) -> Result<(), ClaimError> {
        let (now, leeway) = (self.now_secs(), self.leeway.as_secs_f64());
        let iat = match (iat, self.max_iat_age) {
            (Some(iat), _) => iat,
            (None, None) => return Ok(()),
            (None, Some(_)) => return Err(ClaimError::Missing("iat")),
        };
        if iat > now + leeway {
            return Err(ClaimError::IssuedInFuture);
        }
        if let Some(max_age) = self.max_iat_age {
            if iat < now - max_age.as_secs_f64() - leeway {
                return Err(ClaimError::IssuedTooLongAgo);
            }
        }
        Ok(())
    }

    /// Checks `aud` (as read by [`audiences`]) against [`ClaimRules::audience`].
    pub fn check_audience(&self, aud: Option<&[&str]>) -> Result<(), ClaimError> {
        match self.audience {
            AudienceRule::Any => Ok(()),
            AudienceRule::OneOf(expected) => {
                let aud = aud.ok_or(ClaimError::Missing("aud"))?;
                if aud.iter().any(|a| expected.iter().any(|x| x == a)) {
                    Ok(())
                } else {
                    Err(ClaimError::BadAudience)
                }
            }
            AudienceRule::Includes { id, also_trusted } => {
                let aud = aud.ok_or(ClaimError::Missing("aud"))?;
                if !aud.contains(&id) {
                    return Err(ClaimError::BadAudience);
                }
                if aud
                    .iter()
                    .any(|a| *a != id && !also_trusted.iter().any(|t| t == a))
                {
                    return Err(ClaimError::UntrustedAudience);
                }
                Ok(())
            }
        }
    }

    /// Checks `iss` (as read by [`string`]) against [`ClaimRules::issuer`].
    pub fn check_issuer(&self, iss: Option<&str>) -> Result<(), ClaimError> {
        let ok = match self.issuer {
            IssuerRule::Any => return Ok(()),
            IssuerRule::OneOf(expected) => {
                let iss = iss.ok_or(ClaimError::Missing("iss"))?;
                expected.iter().any(|x| x == iss)
            }
            IssuerRule::Exactly(expected) => iss.ok_or(ClaimError::Missing("iss"))? == expected,
        };
        if ok {
            Ok(())
        } else {
            Err(ClaimError::BadIssuer)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn rules<'a>(aud: &'a [String], iss: &'a [String]) -> ClaimRules<'a> {
        ClaimRules {
            issuer: IssuerRule::any_if_empty(iss),
            audience: AudienceRule::any_if_empty(aud),
            max_iat_age: None,
            leeway: Duration::from_secs(60),
            now: OffsetDateTime::from_unix_timestamp(NOW).unwrap(),
        }
    }

    /// "Any" is said explicitly; a list that came out empty matches nothing (fails closed).
    #[test]
    fn an_empty_list_matches_nothing_and_any_is_explicit() {
        let at = OffsetDateTime::from_unix_timestamp(NOW).unwrap();
        let rules = |issuer, audience| ClaimRules {
            issuer,
            audience,
            max_iat_age: None,
            leeway: Duration::from_secs(60),
            now: at,
        };
        let strict = rules(IssuerRule::OneOf(&[]), AudienceRule::OneOf(&[]));
        assert_eq!(strict.check_issuer(Some("i")), Err(ClaimError::BadIssuer));
        assert_eq!(strict.check_issuer(None), Err(ClaimError::Missing("iss")));
        assert_eq!(
            strict.check_audience(Some(&["a"])),
            Err(ClaimError::BadAudience)
        );
        let open = rules(
            IssuerRule::any_if_empty(&[]),
            AudienceRule::any_if_empty(&[]),
        );
        assert_eq!(open.check_issuer(None), Ok(()));
        assert_eq!(open.check_audience(None), Ok(()));
    }

    /// The bearer order: types first, then exp, nbf, iat, aud, iss. A fast IdP clock puts both
    /// `nbf` and `iat` in the future; bearer tokens report `nbf`.
    #[test]
    fn bearer_precedence() {
        let (aud, iss) = (vec!["a".to_owned()], vec!["i".to_owned()]);
        let r = rules(&aud, &iss);
        let check = |v: serde_json::Value| r.check(v.as_object().unwrap());
        #[rustfmt::skip]
        let cases = [
            (json!({"exp": NOW + 10, "aud": "a", "iss": "i"}), Ok(())),
            (json!({"exp": NOW - 100, "aud": 1}), Err(ClaimError::WrongType("aud"))),
            (json!({"aud": "x", "iss": "x"}), Err(ClaimError::Missing("exp"))),
            (json!({"exp": NOW - 100, "aud": "x", "iss": "x"}), Err(ClaimError::Expired)),
            (json!({"exp": NOW + 9999, "nbf": NOW + 999, "iat": NOW + 999}), Err(ClaimError::NotYetValid)),
            (json!({"exp": NOW + 10, "iat": NOW + 999, "aud": "x"}), Err(ClaimError::IssuedInFuture)),
            (json!({"exp": NOW + 10, "aud": "x", "iss": "x"}), Err(ClaimError::BadAudience)),
            (json!({"exp": NOW + 10, "aud": ["x", "a"], "iss": "x"}), Err(ClaimError::BadIssuer)),
            (json!({"exp": NOW + 10, "aud": "a"}), Err(ClaimError::Missing("iss"))),
        ];
        for (claims, expected) in cases {
            assert_eq!(check(claims.clone()), expected, "{claims}");
        }
        // Empty lists check nothing but the types.
        let open = rules(&[], &[]);
        assert_eq!(
            open.check(json!({"exp": NOW + 10}).as_object().unwrap()),
            Ok(())
        );
    }

    #[test]
    fn issued_at_age_and_included_audience() {
        let trusted = vec!["api".to_owned()];
        let r = ClaimRules {
            issuer: IssuerRule::Exactly("i"),
            audience: AudienceRule::Includes {
                id: "client",
                also_trusted: &trusted,
            },
            max_iat_age: Some(Duration::from_secs(600)),
            ..rules(&[], &[])
        };
        assert_eq!(r.check_issued_at(None), Err(ClaimError::Missing("iat")));
        assert_eq!(r.check_issued_at(Some((NOW - 660) as f64)), Ok(()));
        assert_eq!(
            r.check_issued_at(Some((NOW - 661) as f64)),
            Err(ClaimError::IssuedTooLongAgo)
        );
        assert_eq!(r.check_audience(Some(&["client", "api"])), Ok(()));
        assert_eq!(
            r.check_audience(Some(&["client", "evil"])),
            Err(ClaimError::UntrustedAudience)
        );
        assert_eq!(
            r.check_audience(Some(&["api"])),
            Err(ClaimError::BadAudience)
        );
        assert_eq!(r.check_issuer(None), Err(ClaimError::Missing("iss")));
        assert_eq!(r.check_issuer(Some("I")), Err(ClaimError::BadIssuer));
    }
}
