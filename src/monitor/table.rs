//! The receiver table: a slab whose keys carry a generation.
//!
//! containerd 0.2 kept its receivers in a `map[int]interface{}` keyed by fd
//! number. Fd numbers are reused the moment they are closed, so an event that
//! was already in the epoll buffer for a closed fd could be handed to whatever
//! opened the same number next. Here a key is a slot index plus a generation,
//! both stored in the epoll event's data: a slot that was freed and reused
//! carries a new generation, and an event with the old one finds nothing.
//!
//! Generations come from one table-wide counter rather than one per slot, so
//! slots can be dropped when the table shrinks without ever handing out a key
//! that an old event could still match (it would take 2^32 insertions while
//! the stale event sits in a 128-entry buffer).
//!
//! Freed slots are reused last-in first-out, which keeps the hot part of the
//! table small and makes "freed and reused within one batch" the normal case,
//! which is why the generation check exists.

/// Marks the end of the free list.
const NIL: u32 = u32::MAX;

/// A table key: slot index in the low 32 bits, generation in the high 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key(u64);

impl Key {
    fn new(index: u32, generation: u32) -> Key {
        Key(u64::from(generation) << 32 | u64::from(index))
    }

    pub(crate) fn from_u64(raw: u64) -> Key {
        Key(raw)
    }

    pub(crate) fn as_u64(self) -> u64 {
        self.0
    }

    fn index(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }

    fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

enum Entry<V> {
    Vacant { next_free: u32 },
    Occupied { generation: u32, value: V },
}

/// A slab of `V` addressed by [`Key`].
pub(crate) struct Table<V> {
    entries: Vec<Entry<V>>,
    free_head: u32,
    len: usize,
    next_generation: u32,
    /// Removals since the last compaction: compaction rescans the vector, so
    /// it waits until enough removals have paid for the scan.
    removals_since_compact: usize,
}

/// Below this many slots the table never bothers to shrink.
const MIN_SLOTS_KEPT: usize = 64;

impl<V> Table<V> {
    pub(crate) const fn new() -> Self {
        Table {
            entries: Vec::new(),
            free_head: NIL,
            len: 0,
            next_generation: 0,
            removals_since_compact: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The key the next [`insert`](Self::insert) will return. Lets a caller
    /// register the key with epoll before the value is committed.
    pub(crate) fn next_key(&self) -> Option<Key> {
        let index = if self.free_head != NIL {
            self.free_head
        } else {
            // The top two indices are the monitor's waker and timer keys.
            u32::try_from(self.entries.len())
                .ok()
                .filter(|&i| i < NIL - 1)?
        };
        Some(Key::new(index, self.next_generation))
    }

    /// Makes the key that [`next_key`](Self::next_key) returned unusable:
    /// the next insert gets a new generation. A caller that registered the
    /// predicted key with epoll and then gave up must call this, because the
    /// kernel may already have reported the fd under that key to a waiter,
    /// which would otherwise resolve it against the next insert.
    pub(crate) fn burn_key(&mut self) {
        self.next_generation = self.next_generation.wrapping_add(1);
    }

    /// Stores `value` and returns its key, or gives the value back when the
    /// table already holds 2^32 - 1 entries.
    pub(crate) fn insert(&mut self, value: V) -> Result<Key, V> {
        let Some(key) = self.next_key() else {
            return Err(value);
        };
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let entry = Entry::Occupied { generation, value };
        if self.free_head != NIL {
            let slot = &mut self.entries[self.free_head as usize];
            self.free_head = match *slot {
                Entry::Vacant { next_free } => next_free,
                Entry::Occupied { .. } => unreachable!("free list points at an occupied slot"),
            };
            *slot = entry;
        } else {
            self.entries.push(entry);
        }
        self.len += 1;
        Ok(key)
    }

    pub(crate) fn get(&self, key: Key) -> Option<&V> {
        match self.entries.get(key.index())? {
            Entry::Occupied { generation, value } if *generation == key.generation() => Some(value),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut V> {
        match self.entries.get_mut(key.index())? {
            Entry::Occupied { generation, value } if *generation == key.generation() => Some(value),
            _ => None,
        }
    }

    pub(crate) fn contains(&self, key: Key) -> bool {
        self.get(key).is_some()
    }

    /// Removes and returns the value under `key`, if the key is current.
    pub(crate) fn remove(&mut self, key: Key) -> Option<V> {
        let index = key.index();
        match self.entries.get(index) {
            Some(Entry::Occupied { generation, .. }) if *generation == key.generation() => {}
            _ => return None,
        }
        let vacant = Entry::Vacant {
            next_free: self.free_head,
        };
        let Entry::Occupied { value, .. } = std::mem::replace(&mut self.entries[index], vacant)
        else {
            unreachable!("checked above");
        };
        self.free_head = index as u32;
        self.len -= 1;
        self.removals_since_compact += 1;
        self.maybe_shrink();
        Some(value)
    }

    /// Gives memory back after a burst: a shim that once watched 20,000
    /// processes should not keep 20,000 slots forever. An empty table frees
    /// everything; a mostly empty one trims the vacant slots at its end (an
    /// occupied slot cannot move, since its key is registered with epoll).
    fn maybe_shrink(&mut self) {
        let slots = self.entries.len();
        if self.len == 0 {
            if slots > MIN_SLOTS_KEPT {
                self.entries = Vec::new();
            } else {
                // Keep the allocation; rebuild nothing, the free list is valid.
                return;
            }
            self.free_head = NIL;
            self.removals_since_compact = 0;
            return;
        }
        // Compact only when the table is mostly empty and enough removals
        // happened since the last scan that the scan is amortised O(1).
        if slots <= MIN_SLOTS_KEPT
            || self.len * 4 > slots
            || self.removals_since_compact < slots / 2
        {
            return;
        }
        self.removals_since_compact = 0;
        while matches!(self.entries.last(), Some(Entry::Vacant { .. })) {
            self.entries.pop();
        }
        if self.entries.capacity() > self.entries.len() * 2 {
            self.entries.shrink_to(self.entries.len() * 2);
        }
        // Relink the survivors, lowest index last so it is reused first.
        self.free_head = NIL;
        for (i, entry) in self.entries.iter_mut().enumerate().rev() {
            if let Entry::Vacant { next_free } = entry {
                *next_free = self.free_head;
                self.free_head = i as u32;
            }
        }
    }

    /// Every live key and value, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Key, &V)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e {
                Entry::Occupied { generation, value } => {
                    Some((Key::new(i as u32, *generation), value))
                }
                Entry::Vacant { .. } => None,
            })
    }

    /// Removes every value, in slot order.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = V> + '_ {
        self.free_head = NIL;
        self.len = 0;
        self.removals_since_compact = 0;
        self.entries.drain(..).filter_map(|e| match e {
            Entry::Occupied { value, .. } => Some(value),
            Entry::Vacant { .. } => None,
        })
    }

    /// The bytes one slot takes.
    pub(crate) fn slot_size() -> usize {
        std::mem::size_of::<Entry<V>>()
    }

    /// Slots currently allocated (occupied or vacant); for tests and sizing.
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_slot_gets_new_generation() {
        let mut t = Table::new();
        let a = t.insert("a").unwrap();
        assert_eq!(t.remove(a), Some("a"));
        let b = t.insert("b").unwrap();
        assert_eq!(a.index(), b.index(), "LIFO reuse of the freed slot");
        assert_ne!(a, b);
        assert_eq!(t.get(a), None, "stale key must not see the new value");
        assert_eq!(t.remove(a), None);
        assert_eq!(t.get(b), Some(&"b"));
    }

    #[test]
    fn next_key_predicts_insert() {
        let mut t = Table::new();
        for i in 0..10 {
            let predicted = t.next_key().unwrap();
            assert_eq!(t.insert(i).unwrap(), predicted);
        }
        let k = t.next_key().unwrap();
        t.remove(Key::new(3, 3));
        let predicted = t.next_key().unwrap();
        assert_ne!(predicted, k);
        assert_eq!(t.insert(99).unwrap(), predicted);
    }

    #[test]
    fn a_burnt_key_is_never_handed_out() {
        let mut t = Table::new();
        let a = t.insert("a").unwrap();
        t.remove(a);
        let predicted = t.next_key().unwrap();
        t.burn_key();
        let b = t.insert("b").unwrap();
        assert_ne!(b, predicted);
        assert_eq!(t.get(predicted), None);
        assert_eq!(t.get(b), Some(&"b"));
    }

    #[test]
    fn shrinks_after_a_burst_and_keys_stay_unique() {
        let mut t = Table::new();
        let keys: Vec<Key> = (0..10_000).map(|i| t.insert(i).unwrap()).collect();
        // Keep a few at the front, drop the rest, newest first (as a burst of
        // short-lived watches ends). Slots can only be trimmed off the end:
        // keys live in epoll, so nothing can be moved.
        for k in keys[10..].iter().rev() {
            t.remove(*k).unwrap();
        }
        assert_eq!(t.len(), 10);
        assert!(t.slots() < 1000, "table kept {} slots", t.slots());
        for (i, k) in keys.iter().enumerate().take(10) {
            assert_eq!(t.get(*k), Some(&i));
        }
        // Old keys never match new entries.
        let fresh: Vec<Key> = (0..5000).map(|i| t.insert(i).unwrap()).collect();
        for k in &keys[10..] {
            assert!(t.get(*k).is_none());
        }
        for k in fresh {
            t.remove(k).unwrap();
        }
        for k in &keys[..10] {
            t.remove(*k).unwrap();
        }
        assert_eq!(t.len(), 0);
        assert_eq!(t.slots(), 0);
    }

    #[test]
    fn random_ops_match_a_model() {
        // A small deterministic model check against a Vec of (key, value).
        let mut t = Table::new();
        let mut model: Vec<(Key, u32)> = Vec::new();
        let mut removed: Vec<Key> = Vec::new();
        let mut x: u32 = 12345;
        for step in 0..200_000u32 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            if x % 3 != 0 || model.is_empty() {
                let k = t.insert(step).unwrap();
                model.push((k, step));
            } else {
                let i = (x as usize / 3) % model.len();
                let (k, v) = model.swap_remove(i);
                assert_eq!(t.remove(k), Some(v));
                removed.push(k);
            }
            assert_eq!(t.len(), model.len());
        }
        for (k, v) in &model {
            assert_eq!(t.get(*k), Some(v));
        }
        for k in removed.iter().rev().take(1000) {
            assert!(!t.contains(*k));
        }
        let mut drained: Vec<u32> = t.drain().collect();
        drained.sort_unstable();
        let mut expected: Vec<u32> = model.iter().map(|(_, v)| *v).collect();
        expected.sort_unstable();
        assert_eq!(drained, expected);
    }
}
