//! The receiver table: a slab whose keys carry a generation.
//!
//! containerd 0.2 kept its receivers in a `map[int]interface{}` keyed by fd
//! number. Fd numbers are reused the moment they are closed, so an event that
//! was already in the epoll buffer for a closed fd could be handed to whatever
//! opened the same number next. Here a key is a slot index plus a stamp, both
//! stored in the epoll event's data: a slot that was freed and reused
//! carries a new stamp, and an event with the old one finds nothing.
//!
//! The stamp is a generation (28 bits, never zero) and the source's kind (4
//! bits). Generations come from one table-wide counter rather than one per
//! slot, so slots can be dropped when the table shrinks without ever handing
//! out a key that an old event could still match (it would take 2^28
//! insertions while the stale event sits in a 128-entry buffer).
//!
//! Freed slots are reused last-in first-out, which keeps the hot part of the
//! table small and makes "freed and reused within one batch" the normal case,
//! which is why the generation check exists.
//!
//! A slot is 24 bytes for an 8-byte receiver: the stamp, the fd and the cold
//! pointer of the source (16), and the receiver. A vacant slot is told apart
//! by the stamp's niche (never zero), so the entry enum costs no tag.
//!
//! A receiver is lent to a handler in one of two ways:
//!
//! - *in place* (the single-owner path): the handler gets `&mut T` straight
//!   into the slot, and a [`TableView`] of everything else: the slices on
//!   either side of that slot, the source in it, and a `spill` vector for
//!   watches added meanwhile (the entries vector cannot grow while a slot
//!   in it is borrowed). Nothing moves; the borrow checker proves that the
//!   handler's own adds and removes cannot touch the receiver it holds.
//! - *moved out* (the shared path, and the rare events of either path): the
//!   watch is taken out of its slot onto the dispatching thread's stack,
//!   and the slot remembers its stamp so that the watch still counts as
//!   live, cannot be reused, and can be asked to end.

use std::num::NonZeroU32;

use crate::event::EventKind;
use crate::source::{eventfd, Kind, Outcome, Source};

/// Marks the end of the free list.
const NIL: u32 = u32::MAX;

/// Generations wrap at 2^28: the stamp keeps four bits for the kind.
const GENERATION_MASK: u32 = 0x0fff_ffff;

/// A table key: slot index in the low 32 bits, stamp in the high 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key(u64);

impl Key {
    fn new(index: u32, stamp: u32) -> Key {
        Key(u64::from(stamp) << 32 | u64::from(index))
    }

    #[inline(always)]
    pub(crate) fn from_u64(raw: u64) -> Key {
        Key(raw)
    }

    pub(crate) fn as_u64(self) -> u64 {
        self.0
    }

    #[inline(always)]
    fn index(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }

    #[inline(always)]
    fn stamp(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The source's [`Kind`] as the key carries it.
    #[inline(always)]
    pub(crate) fn kind_bits(self) -> u32 {
        self.stamp() & 0xf
    }
}

/// One watch: what is watched, and the caller's value for it.
pub(crate) struct Watch<T> {
    pub(crate) source: Source,
    pub(crate) receiver: T,
}

enum Entry<T> {
    Occupied(Watch<T>),
    /// Free (`lent == 0`, linked by `next_free`), or lent: the watch with
    /// stamp `lent` is out with a handler; `unwatched` when it was asked to
    /// end meanwhile; `waitable` when it was lent by the shared path, whose
    /// lender wakes threads that wait to unwatch it.
    Vacant {
        next_free: u32,
        lent: u32,
        unwatched: bool,
        waitable: bool,
    },
}

/// What a readiness gave: the hot case (one non-final event, its watch lent
/// out of the table), anything else, or a key that is not a live watch.
pub(crate) enum Ready<T> {
    /// An eventfd's count, the hot kind.
    Signaled(u64, Watch<T>),
    Lent(EventKind, Watch<T>),
    Other(Outcome),
    Miss,
}

/// What [`Table::remove`] found.
pub(crate) enum Removal<T> {
    Removed(Watch<T>),
    /// The watch is lent to a handler: marked to end when it comes back.
    Lent,
    Missing,
}

/// A slab of watches addressed by [`Key`].
pub(crate) struct Table<T> {
    entries: Vec<Entry<T>>,
    /// Slots added while a handler held a receiver in place (`entries`
    /// cannot grow then); appended to `entries` when it returns. Empty
    /// otherwise.
    spill: Vec<Entry<T>>,
    meta: Meta,
}

/// The table's bookkeeping, which a [`TableView`] shares.
struct Meta {
    free_head: u32,
    /// Occupied and lent slots.
    len: usize,
    next_generation: u32,
    /// Removals since the last compaction: compaction rescans the vector, so
    /// it waits until enough removals have paid for the scan.
    removals_since_compact: usize,
}

/// The table as a handler's adds and removes see it while the handler
/// holds the receiver of one slot (the *hole*) in place, or the whole table
/// (no hole). Slots added through a view go to the spill vector when no
/// free slot is left; [`Table::settle`] appends them once the view is gone.
pub(crate) struct TableView<'a, T> {
    /// The slots before the hole (all of `entries` when there is none).
    left: &'a mut [Entry<T>],
    hole: Option<Hole<'a>>,
    /// The slots after the hole.
    right: &'a mut [Entry<T>],
    spill: &'a mut Vec<Entry<T>>,
    meta: &'a mut Meta,
    /// Something was added or removed: the table needs settling.
    pub(crate) dirty: bool,
}

/// The slot whose receiver a handler holds in place: its source is still
/// reachable, its receiver is not.
pub(crate) struct Hole<'a> {
    stamp: u32,
    source: &'a mut Source,
    /// Asked to end while its receiver was held: it ends once the handler
    /// returns, and the receiver comes back as an `Unwatched` event.
    pub(crate) unwatched: bool,
}

/// One slot of a view.
enum Slot<'s, 'a, T> {
    Entry(&'s mut Entry<T>),
    Hole(&'s mut Hole<'a>),
}

/// Below this many slots the table never bothers to shrink.
const MIN_SLOTS_KEPT: usize = 64;

impl<T> Table<T> {
    pub(crate) const fn new() -> Self {
        Table {
            entries: Vec::new(),
            spill: Vec::new(),
            meta: Meta {
                free_head: NIL,
                len: 0,
                next_generation: 1,
                removals_since_compact: 0,
            },
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.meta.len
    }

    /// The whole table as a view, for adds and removes outside of a
    /// handler. Call [`settle`](Self::settle) after.
    #[inline]
    pub(crate) fn view(&mut self) -> TableView<'_, T> {
        let Table {
            entries,
            spill,
            meta,
        } = self;
        TableView {
            left: entries,
            hole: None,
            right: &mut [],
            spill,
            meta,
            dirty: false,
        }
    }

    /// The receiver under `key` (if current), in place, and a view of the
    /// rest of the table with its slot as the hole.
    #[inline(always)]
    pub(crate) fn split_at(&mut self, key: Key) -> Option<(&mut T, TableView<'_, T>)> {
        let Table {
            entries,
            spill,
            meta,
        } = self;
        let index = key.index();
        if index >= entries.len() {
            return None;
        }
        let (left, rest) = entries.split_at_mut(index);
        let (current, right) = rest.split_first_mut()?;
        let Entry::Occupied(Watch { source, receiver }) = current else {
            return None;
        };
        if source.stamp.get() != key.stamp() {
            return None;
        }
        let hole = Hole {
            stamp: key.stamp(),
            source,
            unwatched: false,
        };
        Some((
            receiver,
            TableView {
                left,
                hole: Some(hole),
                right,
                spill,
                meta,
                dirty: false,
            },
        ))
    }

    /// Appends what a view spilled, if a handler that panicked left
    /// anything there.
    #[inline(always)]
    pub(crate) fn settle_spill(&mut self) {
        if !self.spill.is_empty() {
            self.settle();
        }
    }

    /// After a view: appends the slots it spilled and gives memory back
    /// if enough was removed.
    #[inline]
    pub(crate) fn settle(&mut self) {
        if !self.spill.is_empty() {
            self.entries.append(&mut self.spill);
        }
        self.maybe_shrink();
    }

    /// Stores `watch` and returns its key, or gives the watch back when the
    /// table already holds 2^32 - 3 entries.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, watch: Watch<T>) -> Result<Key, Watch<T>> {
        let inserted = self.view().insert(watch);
        self.settle();
        inserted
    }

    #[cfg(test)]
    pub(crate) fn next_key(&mut self, kind: Kind) -> Option<Key> {
        self.view().next_key(kind)
    }

    #[cfg(test)]
    pub(crate) fn burn_key(&mut self) {
        self.view().burn_key()
    }

    #[inline(always)]
    pub(crate) fn get(&self, key: Key) -> Option<&Watch<T>> {
        match self.entries.get(key.index())? {
            Entry::Occupied(w) if w.source.stamp.get() == key.stamp() => Some(w),
            _ => None,
        }
    }

    #[inline(always)]
    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut Watch<T>> {
        match self.entries.get_mut(key.index())? {
            Entry::Occupied(w) if w.source.stamp.get() == key.stamp() => Some(w),
            _ => None,
        }
    }

    /// Live: in its slot, or lent and not asked to end.
    pub(crate) fn contains(&self, key: Key) -> bool {
        match self.entries.get(key.index()) {
            Some(Entry::Occupied(w)) => w.source.stamp.get() == key.stamp(),
            Some(Entry::Vacant {
                lent, unwatched, ..
            }) => *lent == key.stamp() && !*unwatched,
            None => false,
        }
    }

    /// The shared path's look at the source under `key` (if current) with
    /// `look`; when that gives one non-final event, lends the watch out at
    /// once (one lookup for both), waitable: its lender wakes those who wait
    /// to unwatch it. A caller's eventfd, the hot kind, is read right here
    /// (its kind is in the key): no outcome to build and take apart. (The
    /// owned path lends in place instead: [`split_at`](Self::split_at).)
    #[inline(always)]
    pub(crate) fn on_ready(
        &mut self,
        key: Key,
        look: impl FnOnce(&mut Source) -> Outcome,
    ) -> Ready<T> {
        let Some(entry) = self.entries.get_mut(key.index()) else {
            return Ready::Miss;
        };
        let Entry::Occupied(w) = entry else {
            return Ready::Miss;
        };
        if w.source.stamp.get() != key.stamp() {
            return Ready::Miss;
        }
        // A caller's eventfd, the hot kind, is read right here (its kind is
        // in the key): no outcome to build and take apart.
        if key.kind_bits() == Kind::EventFd as u32 {
            if let Some(fd) = &w.source.fd {
                return match eventfd::read_count(fd) {
                    Some(count) => match lend_entry(entry, key, true) {
                        Some(w) => Ready::Signaled(count, w),
                        None => Ready::Miss,
                    },
                    None => Ready::Other(eventfd::drain_slowly(fd).into()),
                };
            }
        }
        match look(&mut w.source) {
            // An emptied cgroup waits for its OOM watch (`resolve.rs`).
            Outcome::One(kind) if !kind.is_final() && !kind.is_emptied() => {
                match lend_entry(entry, key, true) {
                    Some(w) => Ready::Lent(kind, w),
                    None => Ready::Miss,
                }
            }
            other => Ready::Other(other),
        }
    }

    /// True while the watch under `key` is lent by the shared path (its
    /// lender will wake those who wait for it) and not asked to end.
    #[inline]
    pub(crate) fn is_lent_waitable(&self, key: Key) -> bool {
        matches!(
            self.entries.get(key.index()),
            Some(Entry::Vacant {
                lent,
                unwatched: false,
                waitable: true,
                ..
            }) if *lent == key.stamp()
        )
    }

    /// Takes the watch under `key` out of its slot, which stays reserved
    /// for it ([`restore`](Self::restore) puts it back).
    #[inline(always)]
    pub(crate) fn lend(&mut self, key: Key, waitable: bool) -> Option<Watch<T>> {
        let entry = self.entries.get_mut(key.index())?;
        match entry {
            Entry::Occupied(w) if w.source.stamp.get() == key.stamp() => {
                lend_entry(entry, key, waitable)
            }
            _ => None,
        }
    }

    /// Puts a lent watch back. When it was asked to end meanwhile, its slot
    /// is freed instead and the watch is handed back to end it.
    #[inline(always)]
    pub(crate) fn restore(&mut self, key: Key, watch: Watch<T>) -> Result<(), Watch<T>> {
        let index = key.index();
        let Some(entry) = self.entries.get_mut(index) else {
            return Err(watch);
        };
        let unwatched = match entry {
            Entry::Vacant {
                lent, unwatched, ..
            } if *lent == key.stamp() => *unwatched,
            // Not this watch's lent slot: nothing to put it back into.
            _ => return Err(watch),
        };
        if unwatched {
            self.free(index);
            return Err(watch);
        }
        // The old value is a marker with nothing to drop: no drop glue to
        // run on the hot path.
        std::mem::forget(std::mem::replace(entry, Entry::Occupied(watch)));
        Ok(())
    }

    /// Removes and returns the watch under `key`, if the key is current.
    /// A lent watch is marked to end when it comes back.
    pub(crate) fn remove(&mut self, key: Key) -> Removal<T> {
        let removal = self.view().remove(key);
        if matches!(removal, Removal::Removed(_)) {
            self.maybe_shrink();
        }
        removal
    }

    /// Links slot `index` into the free list (a lent slot that comes back
    /// after it was asked to end).
    #[cold]
    #[inline(never)]
    fn free(&mut self, index: usize) {
        self.entries[index] = Entry::free(self.meta.free_head);
        self.meta.free_head = index as u32;
        self.meta.len -= 1;
        self.meta.removals_since_compact += 1;
        self.maybe_shrink();
    }

    /// Gives memory back after a burst: a shim that once watched 20,000
    /// processes should not keep 20,000 slots forever. An empty table frees
    /// everything; a mostly empty one trims the free slots at its end (an
    /// occupied or lent slot cannot move, since its key is registered with
    /// epoll).
    #[inline]
    fn maybe_shrink(&mut self) {
        // The common case, looked at on every add and remove: nothing to
        // give back.
        let slots = self.entries.len();
        let meta = &self.meta;
        let keep = slots <= MIN_SLOTS_KEPT
            || (meta.len != 0 && (meta.len * 4 > slots || meta.removals_since_compact < slots / 2));
        if keep && self.spill.is_empty() {
            return;
        }
        self.shrink();
    }

    #[cold]
    #[inline(never)]
    fn shrink(&mut self) {
        // Spilled slots have keys past the end of `entries`: never trim
        // below them. (Settled before this, except after a panic.)
        if !self.spill.is_empty() {
            self.entries.append(&mut self.spill);
        }
        let slots = self.entries.len();
        let meta = &mut self.meta;
        if meta.len == 0 {
            if slots > MIN_SLOTS_KEPT {
                self.entries = Vec::new();
            } else {
                // Keep the allocation; rebuild nothing, the free list is valid.
                return;
            }
            meta.free_head = NIL;
            meta.removals_since_compact = 0;
            return;
        }
        // Compact only when the table is mostly empty and enough removals
        // happened since the last scan that the scan is amortised O(1).
        if slots <= MIN_SLOTS_KEPT
            || meta.len * 4 > slots
            || meta.removals_since_compact < slots / 2
        {
            return;
        }
        meta.removals_since_compact = 0;
        while matches!(self.entries.last(), Some(Entry::Vacant { lent: 0, .. })) {
            self.entries.pop();
        }
        if self.entries.capacity() > self.entries.len() * 2 {
            self.entries.shrink_to(self.entries.len() * 2);
        }
        // Relink the survivors, lowest index last so it is reused first.
        let meta = &mut self.meta;
        meta.free_head = NIL;
        for (i, entry) in self.entries.iter_mut().enumerate().rev() {
            if let Entry::Vacant {
                next_free, lent: 0, ..
            } = entry
            {
                *next_free = meta.free_head;
                meta.free_head = i as u32;
            }
        }
    }

    /// Every watch in its slot (not lent), with its key, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Key, &Watch<T>)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e {
                Entry::Occupied(w) => Some((Key::new(i as u32, w.source.stamp.get()), w)),
                Entry::Vacant { .. } => None,
            })
    }

    /// Removes every watch in its slot, in slot order.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Watch<T>> + '_ {
        self.meta.free_head = NIL;
        self.meta.len = 0;
        self.meta.removals_since_compact = 0;
        self.entries.append(&mut self.spill);
        self.entries.drain(..).filter_map(|e| match e {
            Entry::Occupied(w) => Some(w),
            Entry::Vacant { .. } => None,
        })
    }

    /// The bytes one slot takes.
    pub(crate) fn slot_size() -> usize {
        std::mem::size_of::<Entry<T>>()
    }

    /// Slots currently allocated (occupied or vacant); for tests and sizing.
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.entries.len()
    }
}

/// Takes the watch out of `entry`, which stays reserved for it, lent
/// (`waitable`: its lender wakes those who wait to unwatch it).
#[inline(always)]
fn lend_entry<T>(entry: &mut Entry<T>, key: Key, waitable: bool) -> Option<Watch<T>> {
    let lent = Entry::Vacant {
        next_free: NIL,
        lent: key.stamp(),
        unwatched: false,
        waitable,
    };
    match std::mem::replace(entry, lent) {
        Entry::Occupied(w) => Some(w),
        vacant @ Entry::Vacant { .. } => {
            *entry = vacant;
            None
        }
    }
}

impl<'a, T> TableView<'a, T> {
    /// Slots in the view, the hole and the spill included: the index the
    /// next slot would get.
    fn slots(&self) -> usize {
        self.left.len() + usize::from(self.hole.is_some()) + self.right.len() + self.spill.len()
    }

    #[inline]
    fn slot(&mut self, index: usize) -> Option<Slot<'_, 'a, T>> {
        let left = self.left.len();
        if index < left {
            return Some(Slot::Entry(&mut self.left[index]));
        }
        let mut i = index - left;
        if self.hole.is_some() {
            if i == 0 {
                return self.hole.as_mut().map(Slot::Hole);
            }
            i -= 1;
        }
        let right = self.right.len();
        if i < right {
            return Some(Slot::Entry(&mut self.right[i]));
        }
        self.spill.get_mut(i - right).map(Slot::Entry)
    }

    /// The key under which [`insert_at`](Self::insert_at) will store the
    /// next `kind` source. Lets a caller register the key with epoll before
    /// the value is committed.
    pub(crate) fn next_key(&self, kind: Kind) -> Option<Key> {
        let index = if self.meta.free_head != NIL {
            self.meta.free_head
        } else {
            // The top three indices are the monitor's waker, timer and
            // kernel log keys.
            u32::try_from(self.slots()).ok().filter(|&i| i < NIL - 2)?
        };
        Some(Key::new(
            index,
            self.meta.next_generation << 4 | kind as u32,
        ))
    }

    /// Spends the next generation without inserting: a key that was handed
    /// to epoll (and may sit in another thread's event buffer) is never
    /// handed out again.
    pub(crate) fn burn_key(&mut self) {
        // Generation 0 is skipped: a stamp is never zero, the niche that
        // tells an occupied slot from a vacant one.
        let next = self.meta.next_generation.wrapping_add(1) & GENERATION_MASK;
        self.meta.next_generation = next.max(1);
    }

    /// Stores `watch` and returns its key, or gives the watch back when the
    /// table already holds 2^32 - 3 entries.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, watch: Watch<T>) -> Result<Key, Watch<T>> {
        let Some(key) = watch.source.kind().and_then(|kind| self.next_key(kind)) else {
            return Err(watch);
        };
        self.insert_at(key, watch);
        Ok(key)
    }

    /// Stores `watch` under `key`, which [`next_key`](Self::next_key) gave
    /// for its kind with nothing added since.
    #[inline]
    pub(crate) fn insert_at(&mut self, key: Key, mut watch: Watch<T>) {
        debug_assert_eq!(self.next_key(watch.source.kind().unwrap()), Some(key));
        self.burn_key();
        // Never zero (generations start at 1).
        watch.source.stamp = NonZeroU32::new(key.stamp()).unwrap_or(NonZeroU32::MAX);
        let entry = Entry::Occupied(watch);
        let free = self.meta.free_head;
        if free != NIL {
            // A free slot is vacant, so never the hole.
            let Some(Slot::Entry(slot)) = self.slot(free as usize) else {
                unreachable!("the free list names a vacant slot");
            };
            let next = match *slot {
                Entry::Vacant { next_free, .. } => next_free,
                Entry::Occupied(_) => NIL,
            };
            *slot = entry;
            self.meta.free_head = next;
        } else {
            self.spill.push(entry);
        }
        self.meta.len += 1;
        self.dirty = true;
    }

    /// The source under `key`, if current (also the hole's).
    pub(crate) fn source(&mut self, key: Key) -> Option<&mut Source> {
        match self.slot(key.index())? {
            Slot::Entry(Entry::Occupied(w)) if w.source.stamp.get() == key.stamp() => {
                Some(&mut w.source)
            }
            Slot::Hole(h) if h.stamp == key.stamp() && !h.unwatched => Some(h.source),
            _ => None,
        }
    }

    /// Live: in its slot, held in place, or lent and not asked to end.
    pub(crate) fn contains(&mut self, key: Key) -> bool {
        match self.slot(key.index()) {
            Some(Slot::Entry(Entry::Occupied(w))) => w.source.stamp.get() == key.stamp(),
            Some(Slot::Entry(Entry::Vacant {
                lent, unwatched, ..
            })) => *lent == key.stamp() && !*unwatched,
            Some(Slot::Hole(h)) => h.stamp == key.stamp() && !h.unwatched,
            None => false,
        }
    }

    /// Removes and returns the watch under `key`, if the key is current. A
    /// lent watch, or the hole, is marked to end when its receiver comes
    /// back.
    #[inline]
    pub(crate) fn remove(&mut self, key: Key) -> Removal<T> {
        let index = key.index();
        let head = self.meta.free_head;
        let removal = match self.slot(index) {
            Some(Slot::Entry(entry)) => match entry {
                Entry::Occupied(w) if w.source.stamp.get() == key.stamp() => {
                    match std::mem::replace(entry, Entry::free(head)) {
                        Entry::Occupied(w) => Removal::Removed(w),
                        Entry::Vacant { .. } => unreachable!("matched as occupied"),
                    }
                }
                Entry::Vacant {
                    lent, unwatched, ..
                } if *lent == key.stamp() && !*unwatched => {
                    *unwatched = true;
                    Removal::Lent
                }
                _ => Removal::Missing,
            },
            Some(Slot::Hole(h)) if h.stamp == key.stamp() && !h.unwatched => {
                h.unwatched = true;
                Removal::Lent
            }
            _ => Removal::Missing,
        };
        if let Removal::Removed(_) = removal {
            self.meta.free_head = index as u32;
            self.meta.len -= 1;
            self.meta.removals_since_compact += 1;
        }
        if !matches!(removal, Removal::Missing) {
            self.dirty = true;
        }
        removal
    }

    /// Every watch in the view with its source reachable (in its slot, or
    /// the hole), with its key, in slot order.
    pub(crate) fn sources(&self) -> impl Iterator<Item = (Key, &Source)> + '_ {
        fn entries<T>(base: usize, slice: &[Entry<T>]) -> impl Iterator<Item = (Key, &Source)> {
            slice.iter().enumerate().filter_map(move |(i, e)| match e {
                Entry::Occupied(w) => {
                    Some((Key::new((base + i) as u32, w.source.stamp.get()), &w.source))
                }
                Entry::Vacant { .. } => None,
            })
        }
        let hole_at = self.left.len();
        let right_at = hole_at + usize::from(self.hole.is_some());
        let spill_at = right_at + self.right.len();
        entries(0, self.left)
            .chain(
                self.hole
                    .iter()
                    .filter(|h| !h.unwatched)
                    .map(move |h| (Key::new(hole_at as u32, h.stamp), &*h.source)),
            )
            .chain(entries(right_at, self.right))
            .chain(entries(spill_at, self.spill))
    }

    /// The source of the hole (of the whole view: none).
    #[inline(always)]
    pub(crate) fn hole_source(&mut self) -> Option<&mut Source> {
        self.hole.as_mut().map(|h| &mut *h.source)
    }

    /// The hole was asked to end.
    pub(crate) fn hole_unwatched(&self) -> bool {
        self.hole.as_ref().is_some_and(|h| h.unwatched)
    }
}

impl<T> Entry<T> {
    fn free(next_free: u32) -> Entry<T> {
        Entry::Vacant {
            next_free,
            lent: 0,
            unwatched: false,
            waitable: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w<T>(receiver: T) -> Watch<T> {
        Watch {
            source: Source {
                stamp: Kind::EventFd.stamp(),
                fd: None,
                cold: None,
            },
            receiver,
        }
    }

    fn get<T: Copy>(t: &Table<T>, k: Key) -> Option<T> {
        t.get(k).map(|w| w.receiver)
    }

    fn remove<T>(t: &mut Table<T>, k: Key) -> Option<T> {
        match t.remove(k) {
            Removal::Removed(w) => Some(w.receiver),
            _ => None,
        }
    }

    #[test]
    fn slots_are_24_bytes_for_an_8_byte_receiver() {
        assert_eq!(Table::<usize>::slot_size(), 24);
        assert_eq!(Table::<()>::slot_size(), 16);
    }

    #[test]
    fn reused_slot_gets_new_generation() {
        let mut t = Table::new();
        let a = t.insert(w("a")).ok().unwrap();
        assert_eq!(remove(&mut t, a), Some("a"));
        let b = t.insert(w("b")).ok().unwrap();
        assert_eq!(a.index(), b.index(), "LIFO reuse of the freed slot");
        assert_ne!(a, b);
        assert_eq!(get(&t, a), None, "stale key must not see the new value");
        assert_eq!(remove(&mut t, a), None);
        assert_eq!(get(&t, b), Some("b"));
    }

    #[test]
    fn burnt_keys_are_never_handed_out() {
        let mut t = Table::new();
        let burnt = t.next_key(Kind::EventFd).unwrap();
        t.burn_key();
        let k = t.insert(w(1)).ok().unwrap();
        assert_eq!(k.index(), burnt.index());
        assert_ne!(k, burnt);
        assert_eq!(get(&t, burnt), None);
    }

    #[test]
    fn generations_wrap_past_zero_so_no_stamp_is_zero() {
        let mut t = Table::new();
        t.meta.next_generation = GENERATION_MASK;
        let last = t.insert(w(1)).ok().unwrap();
        assert_eq!(last.stamp() >> 4, GENERATION_MASK);
        // The eventfd kind is 0: generation 0 would make the stamp 0, the
        // vacant slot's niche.
        let wrapped = t.insert(w(2)).ok().unwrap();
        assert_eq!(wrapped.stamp(), 1 << 4 | Kind::EventFd as u32);
        assert_eq!(get(&t, last), Some(1));
        assert_eq!(get(&t, wrapped), Some(2));
    }
    #[test]
    fn lent_watches_stay_live_and_end_when_asked() {
        let mut t = Table::new();
        let a = t.insert(w(1)).ok().unwrap();
        let lent = t.lend(a, true).unwrap();
        assert!(t.contains(a));
        assert!(t.is_lent_waitable(a));
        assert!(t.get(a).is_none());
        assert!(t.lend(a, false).is_none(), "lent twice");
        // Not reused while lent.
        let b = t.insert(w(2)).ok().unwrap();
        assert_ne!(a.index(), b.index());
        assert!(t.restore(a, lent).is_ok());
        assert_eq!(get(&t, a), Some(1));
        // Asked to end while lent: removal says so, restore frees the slot.
        let lent = t.lend(a, false).unwrap();
        assert!(matches!(t.remove(a), Removal::Lent));
        assert!(!t.contains(a));
        assert!(!t.is_lent_waitable(a), "asked to end: nothing to wait for");
        assert!(matches!(t.remove(a), Removal::Missing));
        assert_eq!(t.restore(a, lent).err().map(|w| w.receiver), Some(1));
        assert_eq!(t.len(), 1);
        let c = t.insert(w(3)).ok().unwrap();
        assert_eq!(c.index(), a.index(), "the freed slot is reused");
        assert!(!t.contains(a));
    }

    #[test]
    fn next_key_predicts_insert() {
        let mut t = Table::new();
        for i in 0..10 {
            let predicted = t.next_key(Kind::EventFd).unwrap();
            assert_eq!(t.insert(w(i)).ok().unwrap(), predicted);
        }
        let k = t.next_key(Kind::EventFd).unwrap();
        let third = t.iter().nth(3).unwrap().0;
        remove(&mut t, third).unwrap();
        let predicted = t.next_key(Kind::EventFd).unwrap();
        assert_ne!(predicted, k);
        assert_eq!(t.insert(w(99)).ok().unwrap(), predicted);
    }

    #[test]
    fn a_burnt_key_is_never_handed_out() {
        let mut t = Table::new();
        let a = t.insert(w("a")).ok().unwrap();
        remove(&mut t, a);
        let predicted = t.next_key(Kind::EventFd).unwrap();
        t.burn_key();
        let b = t.insert(w("b")).ok().unwrap();
        assert_ne!(b, predicted);
        assert_eq!(get(&t, predicted), None);
        assert_eq!(get(&t, b), Some("b"));
    }

    #[test]
    fn shrinks_after_a_burst_and_keys_stay_unique() {
        let mut t = Table::new();
        let keys: Vec<Key> = (0..10_000).map(|i| t.insert(w(i)).ok().unwrap()).collect();
        // Keep a few at the front, drop the rest, newest first (as a burst of
        // short-lived watches ends). Slots can only be trimmed off the end:
        // keys live in epoll, so nothing can be moved.
        for k in keys[10..].iter().rev() {
            remove(&mut t, *k).unwrap();
        }
        assert_eq!(t.len(), 10);
        assert!(t.slots() < 1000, "table kept {} slots", t.slots());
        for (i, k) in keys.iter().enumerate().take(10) {
            assert_eq!(get(&t, *k), Some(i));
        }
        // Old keys never match new entries.
        let fresh: Vec<Key> = (0..5000).map(|i| t.insert(w(i)).ok().unwrap()).collect();
        for k in &keys[10..] {
            assert!(t.get(*k).is_none());
        }
        for k in fresh {
            remove(&mut t, k).unwrap();
        }
        for k in &keys[..10] {
            remove(&mut t, *k).unwrap();
        }
        assert_eq!(t.len(), 0);
        assert_eq!(t.slots(), 0);
    }

    #[test]
    fn random_ops_match_a_model() {
        // A small deterministic model check against a Vec of (key, value),
        // with some watches lent (and some of those asked to end) meanwhile.
        let mut t = Table::new();
        let mut model: Vec<(Key, u32)> = Vec::new();
        let mut removed: Vec<Key> = Vec::new();
        let mut x: u32 = 12345;
        for step in 0..200_000u32 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            if x % 3 != 0 || model.is_empty() {
                let k = t.insert(w(step)).ok().unwrap();
                model.push((k, step));
            } else if x % 7 == 0 {
                // Lend one; maybe end it while lent; then give it back.
                let i = (x as usize / 3) % model.len();
                let (k, v) = model[i];
                let lent = t.lend(k, x % 5 == 0).unwrap();
                assert_eq!(lent.receiver, v);
                if x % 2 == 0 {
                    assert!(matches!(t.remove(k), Removal::Lent));
                    assert_eq!(t.restore(k, lent).err().map(|w| w.receiver), Some(v));
                    model.swap_remove(i);
                    removed.push(k);
                } else {
                    assert!(t.restore(k, lent).is_ok());
                }
            } else {
                let i = (x as usize / 3) % model.len();
                let (k, v) = model.swap_remove(i);
                assert_eq!(remove(&mut t, k), Some(v));
                removed.push(k);
            }
            assert_eq!(t.len(), model.len());
        }
        for (k, v) in &model {
            assert_eq!(get(&t, *k), Some(*v));
        }
        for k in removed.iter().rev().take(1000) {
            assert!(!t.contains(*k));
        }
        let mut drained: Vec<u32> = t.drain().map(|w| w.receiver).collect();
        drained.sort_unstable();
        let mut expected: Vec<u32> = model.iter().map(|(_, v)| *v).collect();
        expected.sort_unstable();
        assert_eq!(drained, expected);
    }
}
