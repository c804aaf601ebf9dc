//! Identifiers: `<prefix>_<8 base62 chars of milliseconds><12 random base62>`.
//!
//! Ids sort by creation time as plain strings (base62 in ASCII order), which is what cursor
//! pagination orders by, and they tell at a glance what they name.

use crate::secret::{push_base62, random_base62};
use std::time::{SystemTime, UNIX_EPOCH};

/// A new sortable id with the given prefix, e.g. `new_id("usr")`.
pub fn new_id(prefix: &str) -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut id = String::with_capacity(prefix.len() + 21);
    id.push_str(prefix);
    id.push('_');
    push_base62(millis, 8, &mut id);
    id.push_str(&random_base62(12));
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
}
