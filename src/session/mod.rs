//! The signed-in session: what a session record holds (its keys, in one place), the idle and
//! absolute timeout rules, drafting and reading it on top of tower-sessions (`browser`),
//! and the live-session cache the verify endpoint reads (`cache`). No axum types here; the
//! `SignedIn` extractor in `http::signed_in` is the HTTP face of [`current`].

mod browser;
mod cache;

pub use browser::{current, draft, id_token_hint, keep_alive, SessionResult, SignedIn};
pub use cache::{SessionCache, SessionIdentity};

use crate::configuration::SessionSettings;

/// Keys of a session record. The store copies user, org and connection into columns, so
/// revocation is one statement.
pub mod keys {
    pub const USER: &str = "uid";
    pub const ORG: &str = "org";
    pub const CONNECTION: &str = "conn";
    /// Unix second of the sign-in: the absolute timeout counts from here.
    pub const AUTH_AT: &str = "auth_at";
    /// Unix second the session was last seen in use (refreshes the idle expiry).
    pub const SEEN: &str = "seen";
    /// The sign-in's raw ID token, sealed with the `SecretBox` and bound to this session's id
    /// (see `session::id_token_hint`): the `id_token_hint` of RP-initiated logout. It goes
    /// with the session row.
    pub const ID_TOKEN: &str = "idt";
    /// The sign-in ID token's `sid` (the IdP's session), when it had one: the store copies it
    /// into a column so a back-channel logout token's `sid` finds the sessions it started.
    pub const IDP_SID: &str = "idp_sid";
}

/// How stale `seen` (or a row's expiry, through the verify endpoint) may get before activity
/// refreshes it: the idle expiry moves forward without a write on every request.
pub const SEEN_RESOLUTION: i64 = 60;

/// The two timeouts every session obeys, with `now` passed in.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub idle_secs: i64,
    pub absolute_secs: i64,
}

impl Timeouts {
    pub fn from_settings(s: &SessionSettings) -> Self {
        Timeouts {
            idle_secs: s.idle_timeout_secs as i64,
            absolute_secs: s.absolute_timeout_secs as i64,
        }
    }

    /// The unix second a session signed in at `auth_at` ends, however active it is.
    pub fn absolute_end(&self, auth_at: i64) -> i64 {
        auth_at + self.absolute_secs
    }

    /// Whether a session signed in at `auth_at` is past its absolute timeout at `now`.
    pub fn is_over(&self, auth_at: i64, now: i64) -> bool {
        now >= self.absolute_end(auth_at)
    }

    /// The idle expiry that activity at `now` earns.
    pub fn idle_deadline(&self, now: i64) -> i64 {
        now + self.idle_secs
    }
}

/// `auth_at` of a stored session record's data (JSON text); 0 (long over) when unreadable.
pub fn auth_at_of(data: &str) -> i64 {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|d| d.get(keys::AUTH_AT).and_then(|v| v.as_i64()))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        let t = Timeouts {
            idle_secs: 60,
            absolute_secs: 3600,
        };
        for (auth_at, now, over) in [(0, 3599, false), (0, 3600, true), (100, 3699, false)] {
            assert_eq!(t.is_over(auth_at, now), over, "{auth_at} {now}");
        }
        assert_eq!(t.idle_deadline(10), 70);
        assert_eq!(auth_at_of(r#"{"auth_at": 42, "uid": "u"}"#), 42);
        assert_eq!(auth_at_of("not json"), 0);
        assert_eq!(auth_at_of(r#"{"auth_at": "42"}"#), 0);
    }
}
