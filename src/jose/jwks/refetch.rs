//! When a JWKS may be fetched again, and which key ids a fetched set was seen to lack: pure
//! rules with `now` passed in, used by [`super::cache`].
//!
//! * A lookup whose key id was not seen before (or a kid-less token whose signature failed)
//!   may fetch at once, but at most once per *floor* per URL after a successful fetch, so a
//!   storm of invented kids costs at most one fetch per floor.
//! * A key id that a fetch answered "not there" is remembered as unknown for the cooldown:
//!   repeating it costs nothing, while another, new kid (a genuine rotation) is still followed.
//! * Refreshing a set that is merely stale, and any fetch after a failed one, waits the full
//!   cooldown (an IdP that is down is not hammered).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::JwksSettings;

/// Key ids remembered per URL at most; past that, expired entries and then the oldest go.
const MAX_UNKNOWN_KIDS: usize = 256;
/// Longer key ids are not remembered (they still cost at most one fetch per floor).
const MAX_REMEMBERED_KID_BYTES: usize = 256;

/// Why a lookup wants a fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Need {
    /// The key is in the set, but the set is past its freshness.
    Stale,
    /// The key is not in the set (a kid not seen before, no fitting key), or a kid-less token's
    /// signature failed with the only fitting key.
    Miss,
}

/// The last fetch attempt of one URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct LastAttempt {
    pub(super) at: Instant,
    pub(super) failed: bool,
}

impl JwksSettings {
    /// The shortest gap between two fetches for a miss: the floor, never above the cooldown.
    pub(super) fn miss_floor(&self) -> Duration {
        self.refetch_floor.min(self.refetch_cooldown)
    }
}

/// Whether a fetch for `need` may start at `now`, given the last attempt.
pub(super) fn may_fetch(
    last: Option<LastAttempt>,
    need: Need,
    now: Instant,
    settings: &JwksSettings,
) -> bool {
    let Some(last) = last else {
        return true;
    };
    let gap = match need {
        Need::Miss if !last.failed => settings.miss_floor(),
        Need::Miss | Need::Stale => settings.refetch_cooldown,
    };
    now.saturating_duration_since(last.at) >= gap
}

/// Key ids a fetched key set lacked, each with when that fetch started.
#[derive(Debug, Default)]
pub(super) struct UnknownKids {
    seen: HashMap<String, Instant>,
}

impl UnknownKids {
    /// Whether a fetch started less than `cooldown` before `now` lacked `kid`.
    pub(super) fn is_unknown(&self, kid: &str, now: Instant, cooldown: Duration) -> bool {
        self.seen
            .get(kid)
            .is_some_and(|at| now.saturating_duration_since(*at) < cooldown)
    }

    /// Remembers that the fetch started at `at` lacked `kid`.
    pub(super) fn remember(&mut self, kid: &str, at: Instant, cooldown: Duration) {
        if cooldown.is_zero() || kid.len() > MAX_REMEMBERED_KID_BYTES {
            return;
        }
        if self.seen.len() >= MAX_UNKNOWN_KIDS && !self.seen.contains_key(kid) {
            self.seen
                .retain(|_, seen| at.saturating_duration_since(*seen) < cooldown);
            if self.seen.len() >= MAX_UNKNOWN_KIDS {
                if let Some(oldest) = self
                    .seen
                    .iter()
                    .min_by_key(|(_, t)| **t)
                    .map(|(k, _)| k.clone())
                {
                    self.seen.remove(&oldest);
                }
            }
        }
        let entry = self.seen.entry(kid.to_owned()).or_insert(at);
        *entry = (*entry).max(at);
    }

    /// Forgets everything (a new key set was installed by hand).
    pub(super) fn clear(&mut self) {
        self.seen.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const SEC: Duration = Duration::from_secs(1);

    fn settings(cooldown: Duration, floor: Duration) -> JwksSettings {
        JwksSettings {
            refetch_cooldown: cooldown,
            refetch_floor: floor,
            ..JwksSettings::default()
        }
    }

    /// The last attempt and the time asked at (`None`: never fetched, asked at t0).
    type Moment = Option<(LastAttempt, Instant)>;

    #[test]
    fn may_fetch_table() {
        let t0 = Instant::now();
        let ok = |ms: u64| {
            Some(LastAttempt {
                at: t0,
                failed: false,
            })
            .map(|l| (l, t0 + MS * ms as u32))
        };
        let failed = |ms: u64| {
            Some(LastAttempt {
                at: t0,
                failed: true,
            })
            .map(|l| (l, t0 + MS * ms as u32))
        };
        let s = settings(30 * SEC, SEC);
        #[rustfmt::skip]
        let cases: Vec<(&str, Moment, Need, JwksSettings, bool)> = vec![
            ("never fetched: a miss fetches", None, Need::Miss, s, true),
            ("never fetched: a stale set fetches", None, Need::Stale, s, true),
            ("miss inside the floor", ok(999), Need::Miss, s, false),
            ("miss at the floor", ok(1000), Need::Miss, s, true),
            ("miss 5 s after a fetch (inside the cooldown)", ok(5000), Need::Miss, s, true),
            ("stale inside the cooldown", ok(5000), Need::Stale, s, false),
            ("stale at the cooldown", ok(30_000), Need::Stale, s, true),
            ("miss after a failed fetch waits the cooldown", failed(5000), Need::Miss, s, false),
            ("miss after a failed fetch, cooldown over", failed(30_000), Need::Miss, s, true),
            ("floor above the cooldown: the cooldown wins", ok(200), Need::Miss, settings(200 * MS, SEC), true),
            ("zero cooldown: always", ok(0), Need::Miss, settings(Duration::ZERO, SEC), true),
            ("zero floor: always for a miss", ok(0), Need::Miss, settings(30 * SEC, Duration::ZERO), true),
        ];
        for (case, last, need, settings, expected) in cases {
            let (last, now) = match last {
                Some((l, now)) => (Some(l), now),
                None => (None, t0),
            };
            assert_eq!(may_fetch(last, need, now, &settings), expected, "{case}");
        }
    }

    #[test]
    fn unknown_kids_are_remembered_per_kid_for_the_cooldown() {
        let t0 = Instant::now();
        let cooldown = 30 * SEC;
        let mut kids = UnknownKids::default();
        kids.remember("bogus", t0, cooldown);
        #[rustfmt::skip]
        let cases = [
            ("the bogus kid, at once", "bogus", t0, true),
            ("the bogus kid, 29.999 s later", "bogus", t0 + cooldown - MS, true),
            ("the bogus kid, after the cooldown", "bogus", t0 + cooldown, false),
            ("another kid (a genuine rotation), 1 s later", "rotated", t0 + SEC, false),
        ];
        for (case, kid, now, expected) in cases {
            assert_eq!(kids.is_unknown(kid, now, cooldown), expected, "{case}");
        }
        // A later fetch that lacks it too extends the memory.
        kids.remember("bogus", t0 + 20 * SEC, cooldown);
        assert!(kids.is_unknown("bogus", t0 + 40 * SEC, cooldown));
        // An earlier one does not shorten it.
        kids.remember("bogus", t0, cooldown);
        assert!(kids.is_unknown("bogus", t0 + 40 * SEC, cooldown));
        kids.clear();
        assert!(!kids.is_unknown("bogus", t0 + SEC, cooldown));
        // Zero cooldown, or an absurd kid: nothing is remembered.
        kids.remember("x", t0, Duration::ZERO);
        kids.remember(&"k".repeat(MAX_REMEMBERED_KID_BYTES + 1), t0, cooldown);
        assert_eq!(kids.len(), 0);
    }

    #[test]
    fn unknown_kids_are_bounded() {
        let t0 = Instant::now();
        let cooldown = 30 * SEC;
        let mut kids = UnknownKids::default();
        for i in 0..(3 * MAX_UNKNOWN_KIDS) {
            kids.remember(&format!("kid-{i}"), t0 + MS * i as u32, cooldown);
        }
        assert_eq!(kids.len(), MAX_UNKNOWN_KIDS);
        // The newest are kept, the oldest went.
        let last = 3 * MAX_UNKNOWN_KIDS - 1;
        let now = t0 + MS * last as u32;
        assert!(kids.is_unknown(&format!("kid-{last}"), now, cooldown));
        assert!(!kids.is_unknown("kid-0", now, cooldown));
        // Expired entries make room first.
        let later = t0 + 2 * cooldown;
        kids.remember("fresh", later, cooldown);
        assert!(kids.is_unknown("fresh", later, cooldown));
        assert_eq!(kids.len(), 1);
    }

    /// A storm of invented kids, one every 5 ms for 3 s: the rules allow one fetch per floor.
    #[test]
    fn a_storm_of_invented_kids_costs_one_fetch_per_floor() {
        let t0 = Instant::now();
        let s = settings(30 * SEC, SEC);
        let mut kids = UnknownKids::default();
        let mut last: Option<LastAttempt> = None;
        let mut fetches = 0;
        for i in 0..600u32 {
            let now = t0 + 5 * MS * i;
            let kid = format!("invented-{i}");
            if kids.is_unknown(&kid, now, s.refetch_cooldown) {
                continue;
            }
            if may_fetch(last, Need::Miss, now, &s) {
                fetches += 1;
                last = Some(LastAttempt {
                    at: now,
                    failed: false,
                });
                kids.remember(&kid, now, s.refetch_cooldown);
            }
        }
        assert_eq!(fetches, 3, "t = 0 s, 1 s, 2 s");
        // Repeating one bogus kid costs nothing after its first fetch.
        let mut repeated = 0;
        let mut last: Option<LastAttempt> = None;
        let mut kids = UnknownKids::default();
        for i in 0..600u32 {
            let now = t0 + 5 * MS * i;
            if kids.is_unknown("bogus", now, s.refetch_cooldown) {
                continue;
            }
            if may_fetch(last, Need::Miss, now, &s) {
                repeated += 1;
                last = Some(LastAttempt {
                    at: now,
                    failed: false,
                });
                kids.remember("bogus", now, s.refetch_cooldown);
            }
        }
        assert_eq!(repeated, 1);
    }
}
