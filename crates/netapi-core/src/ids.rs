//! Identifiers: `<prefix>_<8 base62 chars of milliseconds><12 base62 chars of tail>`.
//!
//! Ids sort by creation time as plain strings (base62 in ASCII order), which is what cursor
//! pagination and "newest first" listings order by, and they tell at a glance what they name.
//! The tail is random for the first id of a millisecond and counts up from there for the
//! next ones (as monotonic ULIDs do), so ids made by one process are strictly increasing even
//! within one millisecond or when the wall clock steps back.

use crate::secret::push_base62;
use rand::Rng;
use rand::rngs::OsRng;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// 62^6: what six base62 characters hold.
const HALF_TAIL: u128 = 56_800_235_584;
/// 62^12: the number of distinct tails.
const TAIL_SPACE: u128 = HALF_TAIL * HALF_TAIL;

/// The (milliseconds, tail) of the last id this process made.
static LAST: Mutex<(u64, u128)> = Mutex::new((0, 0));

/// A random tail in the lower half of the space, leaving room to count up.
fn random_tail() -> u128 {
    OsRng.gen_range(0..TAIL_SPACE / 2)
}

/// A new sortable id with the given prefix, e.g. `new_id("usr")`.
pub fn new_id(prefix: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let (millis, tail) = {
        let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
        let next = if now > last.0 {
            (now, random_tail())
        } else if last.1 + 1 < TAIL_SPACE {
            (last.0, last.1 + 1)
        } else {
            (last.0 + 1, random_tail())
        };
        *last = next;
        next
    };
    let mut id = String::with_capacity(prefix.len() + 21);
    id.push_str(prefix);
    id.push('_');
    push_base62(millis, 8, &mut id);
    // Both halves are below 62^6 < 2^36, so the casts are exact.
    push_base62(u64::try_from(tail / HALF_TAIL).unwrap_or(0), 6, &mut id);
    push_base62(u64::try_from(tail % HALF_TAIL).unwrap_or(0), 6, &mut id);
    id
}

/// Whether `text` could be an id with `prefix` (used to reject garbage path parameters and
/// page tokens early).
pub fn looks_like_id(prefix: &str, text: &str) -> bool {
    text.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|rest| rest.len() == 20 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation() {
        let first = new_id("usr");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_id("usr");
        assert!(first < second);
        assert!(looks_like_id("usr", &first));
        assert!(!looks_like_id("key", &first));
        assert!(!looks_like_id("usr", "usr_../../etc"));
    }

    #[test]
    fn ids_made_in_one_millisecond_still_increase() {
        let ids: Vec<String> = (0..10_000).map(|_| new_id("evt")).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
        }
        assert!(ids.iter().all(|id| looks_like_id("evt", id)));
    }
}
