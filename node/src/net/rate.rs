//! A rate per key (a token's name, or a client's address): so many requests a second, with a
//! burst as large, beyond which the answer is 429 with `Retry-After`. The receivers' guard and
//! the query API both limit this way.

use std::num::NonZeroU32;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::net::answer::Answer;

/// Keys remembered before those gone quiet are dropped, so that many keys (client addresses)
/// cannot fill memory.
const MAX_KEYS: usize = 4096;

/// `rate` requests a second per key.
pub struct KeyedRate(DefaultKeyedRateLimiter<String>);

impl KeyedRate {
    /// A limit of `rate` a second (a burst of as many) per key.
    pub fn new(rate: NonZeroU32) -> KeyedRate {
        KeyedRate(RateLimiter::keyed(Quota::per_second(rate)))
    }

    /// Counts one request of `key`; the refusal (429, with when to come back) beyond its rate.
    pub fn check(&self, key: &str) -> Result<(), Answer> {
        if self.0.len() > MAX_KEYS {
            self.0.retain_recent();
        }
        self.0.check_key(&key.to_string()).map_err(|not_until| {
            Answer::rate_limited(not_until.wait_time_from(self.0.clock().now()))
        })
    }
}
