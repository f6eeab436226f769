//! The one way this crate takes a lock.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, even if a task panicked while holding it. Every map and counter guarded this
/// way is changed by single inserts, removes or assignments, so a panic elsewhere can never leave
/// it half-written; refusing the lock would only turn one panic into many.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
