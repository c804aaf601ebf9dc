//! Counters with two labels of fixed values, registered with the metrics recorder once per
//! thread: `metrics::counter!` builds and hashes a labelled key on every call, which a
//! request path taken tens of thousands of times a second should not pay. Bounded by the
//! label values, which are `'static` (never chosen by a caller).

use std::cell::RefCell;
use std::collections::HashMap;

type Labels = [(&'static str, &'static str); 2];

thread_local! {
    static COUNTERS: RefCell<HashMap<(&'static str, Labels), metrics::Counter, crate::FastHash>> =
        RefCell::new(HashMap::default());
}

/// Adds one to the counter `name` with `labels`.
pub fn increment(name: &'static str, labels: Labels) {
    COUNTERS.with_borrow_mut(|counters| {
        counters
            .entry((name, labels))
            .or_insert_with(|| metrics::counter!(name, &labels))
            .increment(1);
    });
}
