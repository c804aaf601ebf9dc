//! Limits shared by several instances through Redis (`redis_url`): the [`SharedCounters`]
//! of the core's limiters. Every count is one `EVAL` of a short script (atomic, one round
//! trip whatever the number of keys). A call that fails or takes longer than the timeout
//! (50 ms by default) answers [`SharedUnavailable`], and the core counts in the process
//! instead: a warning at most every ten seconds and `netapi_shared_limit_fallbacks_total`
//! say so, a request never fails for it. The connection is made in the background and made
//! again whenever it breaks.

use netapi_core::limiter::{SharedCounters, SharedUnavailable};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

/// Adds `ARGV[1]` (0: reads only) to each key, giving a new count a window of `ARGV[2]`
/// milliseconds; answers count and milliseconds left for each key, flat. A key left without
/// expiry (none should be) gets one, so nothing stays forever.
const SCRIPT: &str = r"
local by = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local out = {}
for _, key in ipairs(KEYS) do
  local count
  if by > 0 then
    count = redis.call('INCRBY', key, by)
  else
    count = tonumber(redis.call('GET', key) or '0') or 0
  end
  local left = redis.call('PTTL', key)
  if by > 0 and left < 0 then
    redis.call('PEXPIRE', key, window)
    left = window
  end
  if left < 0 then left = 0 end
  out[#out + 1] = count
  out[#out + 1] = left
end
return out
";

/// How long between two warnings that Redis is unavailable, seconds.
const WARN_EVERY: i64 = 10;
/// How long between two attempts at the first connection.
const CONNECT_RETRY: Duration = Duration::from_secs(1);

/// Counters in Redis, shared by every instance configured with the same `redis_url`.
pub struct RedisCounters {
    connection: OnceLock<ConnectionManager>,
    timeout: Duration,
    /// Unix seconds of the last warning.
    warned: AtomicI64,
}

/// Never shows the URL: it may carry a password.
impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters")
            .field("connected", &self.connection.get().is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisCounters {
    /// Counters at `url` (`redis://[user:password@]host[:port][/db]`, or `rediss://` when the
    /// client was built with TLS), each call given at most `timeout`. Connects in the
    /// background (call within a Tokio runtime): until it has, every call falls back. Fails
    /// only for a URL that does not parse.
    pub fn connect(url: &str, timeout: Duration) -> Result<Arc<Self>, String> {
        // The error is not shown: it may quote the URL, password and all.
        let client = redis::Client::open(url).map_err(|_| {
            "redis_url is not a Redis URL (redis://[user:password@]host[:port][/db])".to_owned()
        })?;
        let counters = Arc::new(Self {
            connection: OnceLock::new(),
            timeout,
            warned: AtomicI64::new(i64::MIN),
        });
        tokio::spawn(first_connection(client, Arc::downgrade(&counters), timeout));
        Ok(counters)
    }

    /// Whether the first connection has been made (it is remade by itself after).
    pub fn connected(&self) -> bool {
        self.connection.get().is_some()
    }

    fn unavailable(&self, why: &dyn std::fmt::Display) -> SharedUnavailable {
        crate::metrics::shared_limit_fallback();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let last = self.warned.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= WARN_EVERY
            && self
                .warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                error = %why,
                "Redis unavailable: limits are counted (and DPoP proofs checked) per process until it answers again"
            );
        }
        SharedUnavailable
    }
}

/// The options of the connection: every attempt and every command bounded by `timeout`,
/// few quick retries (a request never waits for them: the caller's own timeout cuts in).
fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout.max(Duration::from_millis(200))))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500))
}

/// Tries the first connection every second until it is made (or the counters are gone).
async fn first_connection(client: redis::Client, counters: Weak<RedisCounters>, timeout: Duration) {
    loop {
        match client
            .get_connection_manager_with_config(manager_config(timeout))
            .await
        {
            Ok(manager) => {
                if let Some(counters) = counters.upgrade() {
                    let _ = counters.connection.set(manager);
                    tracing::info!("connected to Redis: limits are shared by every instance");
                }
                return;
            }
            Err(err) => {
                let Some(counters) = counters.upgrade() else {
                    return;
                };
                counters.unavailable(&err);
            }
        }
        tokio::time::sleep(CONNECT_RETRY).await;
    }
}

#[async_trait::async_trait]
impl SharedCounters for RedisCounters {
    async fn add(
        &self,
        keys: &[String],
        by: u32,
        window_ms: u64,
    ) -> Result<Vec<(u64, u64)>, SharedUnavailable> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let Some(connection) = self.connection.get() else {
            return Err(self.unavailable(&"not connected yet"));
        };
        let mut connection = connection.clone();
        let mut command = redis::cmd("EVAL");
        command
            .arg(SCRIPT)
            .arg(keys.len())
            .arg(keys)
            .arg(by)
            .arg(window_ms);
        let answer = tokio::time::timeout(
            self.timeout,
            command.query_async::<Vec<i64>>(&mut connection),
        )
        .await;
        let flat = match answer {
            Ok(Ok(flat)) => flat,
            Ok(Err(err)) => return Err(self.unavailable(&err)),
            Err(_) => return Err(self.unavailable(&"no answer within the timeout")),
        };
        if flat.len() != keys.len() * 2 {
            return Err(self.unavailable(&"unexpected answer"));
        }
        Ok(flat
            .chunks_exact(2)
            .map(|pair| {
                (
                    u64::try_from(pair[0]).unwrap_or(0),
                    u64::try_from(pair[1]).unwrap_or(0),
                )
            })
            .collect())
    }

    async fn set_once(&self, key: &str, ttl_ms: u64) -> Result<bool, SharedUnavailable> {
        let Some(connection) = self.connection.get() else {
            return Err(self.unavailable(&"not connected yet"));
        };
        let mut connection = connection.clone();
        let mut command = redis::cmd("SET");
        command
            .arg(key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms.max(1));
        let answer = tokio::time::timeout(
            self.timeout,
            command.query_async::<Option<String>>(&mut connection),
        )
        .await;
        match answer {
            // `OK` when set; nil when the key was there.
            Ok(Ok(set)) => Ok(set.is_some()),
            Ok(Err(err)) => Err(self.unavailable(&err)),
            Err(_) => Err(self.unavailable(&"no answer within the timeout")),
        }
    }
}
