//! How long a fetched key set stays fresh: the answer's caching headers (RFC 9111), clamped by
//! the settings, and `Instant` arithmetic that never overflows.

use std::time::{Duration, Instant, SystemTime};

use super::JwksSettings;

impl JwksSettings {
    /// `lifetime` limited to [`min_refresh`, `max_refresh`] (`max_refresh`
    /// wins if the bounds are inverted; never panics).
    ///
    /// [`min_refresh`]: JwksSettings::min_refresh
    /// [`max_refresh`]: JwksSettings::max_refresh
    pub(crate) fn clamp_freshness(&self, lifetime: Duration) -> Duration {
        lifetime.max(self.min_refresh).min(self.max_refresh)
    }
}

/// `t + d`, or a far-future instant where that is not representable.
pub(crate) fn instant_after(t: Instant, d: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    t.checked_add(d)
        .or_else(|| t.checked_add(CENTURY.min(d)))
        .unwrap_or(t)
}

/// An HTTP delta-seconds value (`1*DIGIT`, tolerating surrounding quotes);
/// values too large for `u64` saturate. `None` if malformed.
fn delta_seconds(value: &str) -> Option<Duration> {
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)))
}

/// How long an answer with these headers stays fresh (RFC 9111 section
/// 4.2.1), minus its `Age`; `None` when it carries no freshness information
/// (the configured `max_age` applies then).
///
/// * `Cache-Control: no-cache` or `no-store`: zero (refresh next time).
/// * else `s-maxage=N` (we are a shared cache), else `max-age=N`; a
///   malformed value counts as zero (RFC 9111: treat as stale);
/// * else `Expires` minus the answer's `Date` (or `now` without a usable
///   `Date`); an unparseable `Expires` (e.g. `0`) counts as zero.
pub(crate) fn freshness_from_headers(
    headers: &reqwest::header::HeaderMap,
    now: SystemTime,
) -> Option<Duration> {
    use reqwest::header::{AGE, CACHE_CONTROL, DATE, EXPIRES};

    let mut no_cache = false;
    let mut max_age: Option<Duration> = None;
    let mut s_maxage: Option<Duration> = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for directive in value.split(',') {
            let (name, argument) = match directive.split_once('=') {
                Some((name, argument)) => (name.trim(), Some(argument)),
                None => (directive.trim(), None),
            };
            let seconds = || Some(argument.and_then(delta_seconds).unwrap_or(Duration::ZERO));
            if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
                no_cache = true;
            } else if name.eq_ignore_ascii_case("max-age") {
                // The first occurrence counts.
                max_age = max_age.or_else(seconds);
            } else if name.eq_ignore_ascii_case("s-maxage") {
                s_maxage = s_maxage.or_else(seconds);
            }
        }
    }

    let http_date = |name| {
        headers
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v.trim()).ok())
    };
    let lifetime = if no_cache {
        Duration::ZERO
    } else if let Some(lifetime) = s_maxage.or(max_age) {
        lifetime
    } else if headers.contains_key(EXPIRES) {
        match http_date(EXPIRES) {
            Some(expires) => {
                let date = http_date(DATE).unwrap_or(now);
                expires.duration_since(date).unwrap_or(Duration::ZERO)
            }
            None => Duration::ZERO,
        }
    } else {
        return None;
    };
    let age = headers
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(delta_seconds)
        .unwrap_or(Duration::ZERO);
    Some(lifetime.saturating_sub(age))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::jwks::JwksCache;
    use crate::test_support::idp_keys::*;
    use crate::test_support::jwks_server::{test_uri, DAY, HOUR};

    fn headers(pairs: &[(&str, &str)]) -> reqwest::header::HeaderMap {
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                reqwest::header::HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn secs(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n))
    }

    #[test]
    fn freshness_from_cache_control_expires_and_age() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = |t: SystemTime| httpdate::fmt_http_date(t);
        let at = |d: u64| date(t0 + Duration::from_secs(d));
        let before = date(t0 - Duration::from_secs(60));
        let (now, plus60, plus120) = (at(0), at(60), at(120));
        type Case<'a> = (Vec<(&'a str, &'a str)>, Option<Duration>);
        let cases: Vec<Case> = vec![
            (vec![], None),
            (vec![("content-type", "application/json")], None),
            (vec![("cache-control", "public")], None),
            (vec![("cache-control", "max-age=60")], secs(60)),
            (
                vec![("cache-control", "public, max-age=60, must-revalidate")],
                secs(60),
            ),
            (vec![("Cache-Control", "MAX-AGE=60")], secs(60)),
            (vec![("cache-control", "max-age=\"60\"")], secs(60)),
            (vec![("cache-control", "max-age = 60")], secs(60)),
            // s-maxage wins over max-age, whichever is larger and in any order.
            (
                vec![("cache-control", "max-age=3600, s-maxage=30")],
                secs(30),
            ),
            (
                vec![("cache-control", "s-maxage=300, max-age=30")],
                secs(300),
            ),
            // no-cache / no-store: refresh next time, whatever else is said.
            (vec![("cache-control", "no-cache")], secs(0)),
            (vec![("cache-control", "max-age=60, No-Store")], secs(0)),
            (
                vec![
                    ("cache-control", "s-maxage=60"),
                    ("cache-control", "no-cache"),
                ],
                secs(0),
            ),
            // Malformed values count as stale.
            (vec![("cache-control", "max-age=abc")], secs(0)),
            (vec![("cache-control", "max-age=-5")], secs(0)),
            (vec![("cache-control", "max-age")], secs(0)),
            (vec![("cache-control", "max-age=")], secs(0)),
            // The first occurrence counts; several header lines combine.
            (vec![("cache-control", "max-age=5, max-age=10")], secs(5)),
            (
                vec![("cache-control", "public"), ("cache-control", "max-age=5")],
                secs(5),
            ),
            // Absurd values saturate (and are clamped by the settings later).
            (
                vec![("cache-control", "max-age=99999999999999999999999")],
                Some(Duration::from_secs(u64::MAX)),
            ),
            // Expires, relative to the answer's Date, or to our clock.
            (vec![("date", &now), ("expires", &plus120)], secs(120)),
            (vec![("date", &plus60), ("expires", &plus120)], secs(60)),
            (vec![("expires", &plus60)], secs(60)),
            (vec![("expires", &before)], secs(0)),
            (vec![("expires", "0")], secs(0)),
            (vec![("date", "yesterday"), ("expires", &plus60)], secs(60)),
            // Cache-Control wins over Expires.
            (
                vec![("cache-control", "max-age=5"), ("expires", &plus60)],
                secs(5),
            ),
            (
                vec![("cache-control", "public"), ("expires", &plus60)],
                secs(60),
            ),
            // Age (time spent in caches on the way) is subtracted.
            (
                vec![("cache-control", "max-age=100"), ("age", "30")],
                secs(70),
            ),
            (
                vec![("cache-control", "max-age=100"), ("age", "300")],
                secs(0),
            ),
            (
                vec![("cache-control", "max-age=100"), ("age", "x")],
                secs(100),
            ),
            (vec![("expires", &plus60), ("age", "10")], secs(50)),
            (vec![("age", "10")], None),
        ];
        for (pairs, expected) in cases {
            assert_eq!(
                freshness_from_headers(&headers(&pairs), t0),
                expected,
                "{pairs:?}"
            );
        }
        // A header value that is not text is ignored, not fatal.
        let mut map = headers(&[("cache-control", "max-age=7")]);
        map.append(
            reqwest::header::CACHE_CONTROL,
            reqwest::header::HeaderValue::from_bytes(b"no-cache\xff").unwrap(),
        );
        assert_eq!(freshness_from_headers(&map, t0), secs(7));
    }

    #[test]
    fn freshness_is_clamped_and_never_overflows() {
        let s = JwksSettings {
            min_refresh: Duration::from_secs(10),
            max_refresh: HOUR,
            ..JwksSettings::default()
        };
        assert_eq!(s.clamp_freshness(Duration::ZERO), Duration::from_secs(10));
        assert_eq!(
            s.clamp_freshness(Duration::from_secs(60)),
            Duration::from_secs(60)
        );
        assert_eq!(s.clamp_freshness(Duration::MAX), HOUR);
        // Inverted bounds: max_refresh wins, no panic.
        let inverted = JwksSettings {
            min_refresh: HOUR,
            max_refresh: Duration::from_secs(10),
            ..s
        };
        assert_eq!(
            inverted.clamp_freshness(Duration::ZERO),
            Duration::from_secs(10)
        );

        // Unbounded settings do not overflow Instant arithmetic.
        let unbounded = JwksSettings {
            max_age: Duration::MAX,
            max_refresh: Duration::MAX,
            max_stale: Duration::MAX,
            ..JwksSettings::default()
        };
        let cache =
            JwksCache::with_keys(http_client(), test_uri(), unbounded, &jwks(&[&rsa1().jwk]))
                .unwrap();
        assert!(cache.fresh_until().unwrap() > Instant::now() + 365 * DAY);
        assert_eq!(
            JwksCache::new(http_client(), test_uri(), unbounded).fresh_until(),
            None
        );
    }
}
