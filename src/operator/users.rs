//! Which watches use which tenant-keyed thing (an endpoint host's metric series, a federated
//! identity's temporary keys), so that the thing goes when its last watch stops using it:
//! deleted, or its spec now names another. Tenants choose these keys freely; without this,
//! every host or audience ever written would stay in memory.

use std::collections::HashMap;
use std::hash::Hash;

/// The things each watch `W` uses, counted per thing `T`.
#[derive(Debug)]
pub struct Users<W, T> {
    by_watch: HashMap<W, Vec<T>>,
    count: HashMap<T, usize>,
}

impl<W, T> Default for Users<W, T> {
    fn default() -> Self {
        Self {
            by_watch: HashMap::new(),
            count: HashMap::new(),
        }
    }
}

impl<W: Clone + Eq + Hash, T: Clone + Eq + Hash> Users<W, T> {
    /// Sets what `watch` uses now (nothing when it is gone); returns what no watch uses any
    /// more. A watch uses a handful of things, so the lists are short.
    pub fn set(&mut self, watch: &W, used: Vec<T>) -> Vec<T> {
        let mut things: Vec<T> = Vec::with_capacity(used.len());
        for thing in used {
            if !things.contains(&thing) {
                things.push(thing);
            }
        }
        if self
            .by_watch
            .get(watch)
            .map_or(things.is_empty(), |used| *used == things)
        {
            return Vec::new();
        }
        for thing in &things {
            *self.count.entry(thing.clone()).or_default() += 1;
        }
        let previous = if things.is_empty() {
            self.by_watch.remove(watch)
        } else {
            self.by_watch.insert(watch.clone(), things)
        };
        let mut unused = Vec::new();
        for thing in previous.unwrap_or_default() {
            if let Some(count) = self.count.get_mut(&thing) {
                *count -= 1;
                if *count == 0 {
                    self.count.remove(&thing);
                    unused.push(thing);
                }
            }
        }
        unused
    }

    /// Whether some watch uses `thing`.
    pub fn is_used(&self, thing: &T) -> bool {
        self.count.contains_key(thing)
    }

    /// How many things are in use (for tests).
    #[cfg(test)]
    pub fn in_use(&self) -> usize {
        self.count.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thing_is_unused_once_its_last_watch_moves_on_or_goes() {
        let mut users: Users<&str, &str> = Users::default();
        assert!(users.set(&"a", vec!["h1", "h2", "h1"]).is_empty());
        assert!(users.set(&"b", vec!["h2"]).is_empty());
        assert!(users.set(&"a", vec!["h1", "h2"]).is_empty(), "unchanged");
        assert_eq!(users.set(&"a", vec!["h3"]), ["h1"], "h2 is still b's");
        assert!(users.is_used(&"h2") && users.is_used(&"h3") && !users.is_used(&"h1"));
        assert_eq!(users.set(&"b", Vec::new()), ["h2"]);
        assert_eq!(users.set(&"a", Vec::new()), ["h3"]);
        assert_eq!(users.in_use(), 0);
        assert!(users.set(&"gone", Vec::new()).is_empty());
    }

    #[test]
    fn a_thousand_edits_leave_only_what_is_in_use() {
        let mut users: Users<u32, String> = Users::default();
        for edit in 0..1000 {
            users.set(&(edit % 10), vec![format!("host-{edit}")]);
        }
        assert_eq!(users.in_use(), 10);
        assert_eq!(users.by_watch.len(), 10);
    }
}
