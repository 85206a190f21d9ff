//! AddressBook: where each replica of each shard can be reached.
//!
//! Replica ids may repeat across shards, so addresses are kept per (shard, replica). An
//! address set without a shard is a default for that replica id in every shard; one known
//! for the shard itself, from a bootstrap, a membership change or a message the replica
//! sent, takes precedence.

use std::collections::HashMap;

use parking_lot::RwLock;

/// AddressBook maps replicas to transport addresses.
#[derive(Default)]
pub(crate) struct AddressBook {
    by_shard: RwLock<HashMap<(u64, u64), String>>,
    defaults: RwLock<HashMap<u64, String>>,
}

impl AddressBook {
    /// get returns the address of `replica` of `shard`.
    pub(crate) fn get(&self, shard: u64, replica: u64) -> Option<String> {
        if let Some(a) = self.by_shard.read().get(&(shard, replica)) {
            return Some(a.clone());
        }
        self.defaults.read().get(&replica).cloned()
    }

    /// set records an address for one shard's replica, or (`shard` None) a default for the
    /// replica id; it returns whether anything changed.
    pub(crate) fn set(&self, shard: Option<u64>, replica: u64, addr: &str) -> bool {
        let changed = |old: Option<&String>| old.map(String::as_str) != Some(addr);
        match shard {
            Some(s) => {
                if !changed(self.by_shard.read().get(&(s, replica))) {
                    return false;
                }
                self.by_shard.write().insert((s, replica), addr.to_string());
            }
            None => {
                if !changed(self.defaults.read().get(&replica)) {
                    return false;
                }
                self.defaults.write().insert(replica, addr.to_string());
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_address_takes_precedence_over_the_default() {
        let b = AddressBook::default();
        assert!(b.set(None, 1, "a:1"));
        assert!(b.set(Some(2), 1, "b:1"));
        assert_eq!(b.get(2, 1).as_deref(), Some("b:1"));
        assert_eq!(b.get(3, 1).as_deref(), Some("a:1"));
        assert_eq!(b.get(3, 4), None);
        assert!(!b.set(Some(2), 1, "b:1"));
    }
}
