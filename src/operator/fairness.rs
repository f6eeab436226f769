//! A fair share of the operator per namespace. The upstream budget bounds the calls to each
//! endpoint with each key, but a tenant chooses both: eight made-up keys on a host that never
//! answers would be eight budgets. So each namespace may have only so many polls in flight at
//! once, whatever its watches name, credential exchanges at IAM, Pod Identity and the metadata
//! service included (they run inside the poll). A namespace whose polls hang waits for its own
//! slots; every other namespace keeps its own.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::lock::lock;

/// Per-namespace slots for polls in flight.
pub struct NamespaceSlots {
    per_namespace: usize,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl NamespaceSlots {
    /// At most `per_namespace` polls in flight in each namespace.
    pub fn new(per_namespace: NonZeroU32) -> Self {
        Self {
            per_namespace: per_namespace.get() as usize,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for one poll of `namespace`, held until dropped, or `None` when all are taken.
    pub fn try_take(&self, namespace: &str) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut slots = lock(&self.slots);
            match slots.get(namespace) {
                Some(semaphore) => Arc::clone(semaphore),
                None => {
                    let semaphore = Arc::new(Semaphore::new(self.per_namespace));
                    slots.insert(namespace.to_owned(), Arc::clone(&semaphore));
                    semaphore
                }
            }
        };
        semaphore.try_acquire_owned().ok()
    }

    /// Forgets the namespaces with no poll in flight, so that the map holds only namespaces
    /// that are polling now (a tenant cannot grow it by creating and deleting namespaces).
    pub fn sweep(&self) {
        lock(&self.slots).retain(|_, semaphore| {
            // Every permit holds a clone of the semaphore: one reference left means none is out.
            Arc::strong_count(semaphore) > 1
        });
    }

    /// How many namespaces are remembered (for tests).
    #[cfg(test)]
    pub fn remembered(&self) -> usize {
        lock(&self.slots).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_gets_its_share_and_others_keep_theirs() {
        let slots = NamespaceSlots::new(NonZeroU32::new(2).unwrap());
        let held: Vec<_> = (0..2).map(|_| slots.try_take("noisy").unwrap()).collect();
        assert!(slots.try_take("noisy").is_none(), "its share is taken");
        assert!(
            slots.try_take("quiet").is_some(),
            "another namespace is not held up"
        );
        drop(held);
        assert!(slots.try_take("noisy").is_some(), "slots come back");
    }

    #[test]
    fn namespaces_without_polls_in_flight_are_forgotten() {
        let slots = NamespaceSlots::new(NonZeroU32::new(2).unwrap());
        let held = slots.try_take("busy").unwrap();
        for namespace in 0..100 {
            drop(slots.try_take(&format!("ns-{namespace}")));
        }
        slots.sweep();
        assert_eq!(
            slots.remembered(),
            1,
            "only the namespace with a poll in flight"
        );
        drop(held);
        slots.sweep();
        assert_eq!(slots.remembered(), 0);
    }
}
