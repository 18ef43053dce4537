//! Tables this process leaves out for lack of a key (SPEC §2.5), so each is reported once.

use std::collections::BTreeSet;
use std::sync::Mutex;

/// The skipped tables, as `db.table`.
static KEYLESS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Records that `table` (`db.table`) is skipped for lack of a key and sets its metric.
/// Returns whether this is news, i.e. whether to log it.
pub fn note_keyless(table: &str) -> bool {
    crate::telemetry::metrics::skipped_table(table, true);
    // A poisoned lock only means another thread panicked mid-insert; the set is still usable.
    let mut set = KEYLESS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    set.insert(table.to_owned())
}

/// Whether `table` (`db.table`) is skipped for lack of a key.
pub fn is_keyless(table: &str) -> bool {
    let set = KEYLESS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    set.contains(table)
}

/// `table` is synced (again): it got a key. Clears its metric if it was skipped.
pub fn clear_keyless(table: &str) {
    let mut set = KEYLESS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if set.remove(table) {
        crate::telemetry::metrics::skipped_table(table, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyless_tables_are_reported_once() {
        assert!(!is_keyless("once.t"));
        assert!(note_keyless("once.t"));
        assert!(!note_keyless("once.t"));
        assert!(is_keyless("once.t"));
        clear_keyless("once.t");
        assert!(!is_keyless("once.t"));
        assert!(note_keyless("once.t"), "reported again after it had a key");
    }
}
