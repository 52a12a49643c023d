//! When to refresh, how long a token may still be served, and how long to
//! back off: pure arithmetic, so it is tested without clocks or servers.
//!
//! Invariant: a token is never called servable once expired, and a healthy
//! connection with a refresh token always has a next refresh time no later
//! than its keep-alive deadline.

use crate::record::Tokens;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use std::time::Duration;

/// Refresh at least this long before expiry (for long-lived tokens): five
/// minutes absorbs clock skew and a slow provider.
const MIN_MARGIN: Duration = Duration::from_secs(5 * 60);
/// ...or this fraction of the lifetime, whichever is larger.
const MARGIN_PERCENT: u32 = 10;
/// A token with less than this left is not handed out (callers wait for the
/// refresh instead): it would expire before the caller could use it.
const MAX_SERVE_FLOOR: Duration = Duration::from_secs(10);
/// The longest provider Retry-After we honour; beyond it we retry anyway.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The refresh policy of one daemon.
#[derive(Debug, Clone)]
pub struct RefreshPolicy {
    /// Refresh at least this often, so single-use refresh tokens that die
    /// unused (Box: 60 days) never lapse on an idle connection.
    pub keepalive: Duration,
    /// Replaces the computed margin when set.
    pub margin_override: Option<Duration>,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            keepalive: Duration::from_secs(30 * 24 * 3600),
            margin_override: None,
            backoff_min: Duration::from_secs(5),
            backoff_max: Duration::from_secs(600),
        }
    }
}

fn chrono(d: Duration) -> ChronoDuration {
    ChronoDuration::from_std(d).unwrap_or(ChronoDuration::MAX)
}

impl RefreshPolicy {
    /// How long before expiry to refresh: min(max(5 min, 10% of the
    /// lifetime), half the lifetime). The half-lifetime cap is what keeps
    /// few-second test tokens from being refreshed on every call.
    pub fn margin(&self, lifetime: Option<Duration>) -> Duration {
        if let Some(m) = self.margin_override {
            return m;
        }
        match lifetime {
            None => MIN_MARGIN,
            Some(l) => MIN_MARGIN.max(l * MARGIN_PERCENT / 100).min(l / 2),
        }
    }

    fn lifetime(tokens: &Tokens) -> Option<Duration> {
        tokens
            .lifetime_secs
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s as u64))
    }

    /// True while the token needs no refresh yet.
    pub fn is_fresh(&self, tokens: &Tokens, now: DateTime<Utc>) -> bool {
        match tokens.expires_at {
            None => true,
            Some(exp) => now < exp - chrono(self.margin(Self::lifetime(tokens))),
        }
    }

    /// True while the token may still be handed out: not expired, and not
    /// so close to expiry that it would die in the caller's hands.
    pub fn is_servable(&self, tokens: &Tokens, now: DateTime<Utc>) -> bool {
        match tokens.expires_at {
            None => true,
            Some(exp) => {
                let floor = match Self::lifetime(tokens) {
                    Some(l) => MAX_SERVE_FLOOR.min(l / 10),
                    None => MAX_SERVE_FLOOR,
                };
                now < exp - chrono(floor)
            }
        }
    }

    /// When the next refresh is due, or `None` when there is nothing to
    /// refresh with. `since` is the last refresh (or the import).
    pub fn next_refresh(&self, tokens: &Tokens, since: DateTime<Utc>) -> Option<DateTime<Utc>> {
        tokens.refresh_token.as_ref()?;
        let keepalive = since + chrono(self.keepalive);
        let by_expiry = tokens
            .expires_at
            .map(|exp| exp - chrono(self.margin(Self::lifetime(tokens))));
        Some(by_expiry.map_or(keepalive, |e| e.min(keepalive)))
    }

    /// The wait before retry number `attempt` (1-based): exponential from
    /// `backoff_min` to `backoff_max` with "equal jitter" (a random point in
    /// the upper half), and never shorter than the provider's Retry-After.
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let exp = self
            .backoff_min
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(30)))
            .min(self.backoff_max);
        let jittered = exp.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        jittered.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER))
    }
}

/// A uniform random number in [0, 1) from the OS CSPRNG, for jitter.
pub fn random_unit() -> f64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    match ring::rand::SystemRandom::new().fill(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::Secret;

    fn tokens(lifetime: i64, expires_at: DateTime<Utc>, rt: bool) -> Tokens {
        Tokens {
            access_token: Secret::new("a"),
            token_type: "bearer".into(),
            refresh_token: rt.then(|| Secret::new("r")),
            expires_at: Some(expires_at),
            lifetime_secs: Some(lifetime),
        }
    }

    #[test]
    fn margin_formula() {
        let p = RefreshPolicy::default();
        let s = Duration::from_secs;
        assert_eq!(p.margin(Some(s(3600))), s(360)); // 10% beats 5 min
        assert_eq!(p.margin(Some(s(14400))), s(1440));
        assert_eq!(p.margin(Some(s(1200))), s(300)); // 5 min floor
        assert_eq!(p.margin(Some(s(4))), s(2)); // half-lifetime cap
        assert_eq!(p.margin(Some(s(600))), s(300));
        assert_eq!(p.margin(None), s(300));
    }

    #[test]
    fn short_tokens_are_fresh_for_half_their_life() {
        let p = RefreshPolicy::default();
        let now = Utc::now();
        let t = tokens(4, now + ChronoDuration::seconds(4), true);
        assert!(p.is_fresh(&t, now));
        assert!(p.is_fresh(&t, now + ChronoDuration::milliseconds(1900)));
        assert!(!p.is_fresh(&t, now + ChronoDuration::milliseconds(2100)));
        assert!(p.is_servable(&t, now + ChronoDuration::milliseconds(3500)));
        assert!(!p.is_servable(&t, now + ChronoDuration::milliseconds(3700)));
        assert!(!p.is_servable(&t, now + ChronoDuration::seconds(5)));
    }

    #[test]
    fn next_refresh_is_margin_or_keepalive() {
        let p = RefreshPolicy::default();
        let now = Utc::now();
        let t = tokens(3600, now + ChronoDuration::seconds(3600), true);
        assert_eq!(
            p.next_refresh(&t, now),
            Some(now + ChronoDuration::seconds(3240))
        );
        let long = tokens(90 * 86400, now + ChronoDuration::days(90), true);
        assert_eq!(
            p.next_refresh(&long, now),
            Some(now + ChronoDuration::days(30))
        );
        let mut never = tokens(0, now, true);
        never.expires_at = None;
        assert_eq!(
            p.next_refresh(&never, now),
            Some(now + ChronoDuration::days(30))
        );
        assert_eq!(p.next_refresh(&tokens(3600, now, false), now), None);
    }

    #[test]
    fn backoff_grows_caps_jitters_and_honours_retry_after() {
        let p = RefreshPolicy::default();
        let s = Duration::from_secs;
        assert_eq!(p.backoff(1, None, 1.0), s(5));
        assert_eq!(p.backoff(1, None, 0.0), Duration::from_millis(2500));
        assert_eq!(p.backoff(3, None, 1.0), s(20));
        assert_eq!(p.backoff(40, None, 1.0), s(600));
        assert_eq!(p.backoff(1, Some(s(42)), 0.0), s(42));
        assert_eq!(p.backoff(1, Some(s(999_999)), 0.0), s(3600));
        let r = random_unit();
        assert!((0.0..1.0).contains(&r));
    }
}
