//! The groups of a GROUP BY: an open-addressing hash table whose lookups can
//! be prefetched.
//!
//! With a million groups the table is far larger than the caches, so a
//! lookup is a cache miss; processed one after the other, a batch's lookups
//! wait for memory one at a time. [`GroupTable::prefetch`] lets the caller
//! ask for a group's memory a few groups before it needs it, so the misses of
//! a batch overlap. A general-purpose map cannot offer that (it does not
//! expose where a key's bucket lives), which is why this one is written here.
//!
//! Layout: linear probing over a byte array of tags (0 = empty, otherwise
//! 0x80 | the hash's top seven bits) beside the slots themselves. A lookup
//! reads its home tag and, on a tag match, the slot, usually the home slot:
//! two lines, both known from the hash alone, both prefetched. Each slot is
//! aligned to a cache line, so a value of at most 64 bytes is one line.
//! Deletion shifts the following run back (no tombstones), so probe runs
//! stay short under churn. The load stays between 3/8 and 3/4.
//!
//! Values do not keep their hash: growing and shifting ask the caller for
//! it again (`rehash`), which keeps a value's slot small.

#[derive(Debug)]
pub(super) struct GroupTable<T> {
    tags: Vec<u8>,
    slots: Vec<Line<T>>,
    len: usize,
}

/// A slot on a cache line of its own.
#[derive(Debug)]
#[repr(align(64))]
struct Line<T>(Option<T>);

impl<T> Default for GroupTable<T> {
    fn default() -> Self {
        GroupTable { tags: Vec::new(), slots: Vec::new(), len: 0 }
    }
}

fn tag(hash: u64) -> u8 {
    0x80 | (hash >> 57) as u8
}

impl<T> GroupTable<T> {
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask()
    }

    /// Asks the memory system for the lines a lookup of `hash` will read.
    /// Only a hint: it changes no state and never faults.
    pub(super) fn prefetch(&self, hash: u64) {
        if self.slots.is_empty() {
            return;
        }
        let home = self.home(hash);
        prefetch(&self.tags[home]);
        prefetch(&self.slots[home]);
    }

    /// The index of the value with `hash` for which `eq` holds.
    pub(super) fn find(&self, hash: u64, mut eq: impl FnMut(&T) -> bool) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let (mask, tag) = (self.mask(), tag(hash));
        let mut at = self.home(hash);
        loop {
            match self.tags[at] {
                0 => return None,
                t if t == tag && self.slots[at].0.as_ref().is_some_and(&mut eq) => return Some(at),
                _ => at = (at + 1) & mask,
            }
        }
    }

    /// The index of the value with `hash` for which `eq` holds, inserting
    /// `make()` first when there is none; `true` when it was inserted.
    /// `rehash` gives a stored value's hash (when the table grows).
    pub(super) fn find_or_insert(
        &mut self,
        hash: u64,
        eq: impl FnMut(&T) -> bool,
        make: impl FnOnce() -> T,
        rehash: impl Fn(&T) -> u64,
    ) -> (usize, bool) {
        if let Some(at) = self.find(hash, eq) {
            return (at, false);
        }
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow(rehash);
        }
        let at = self.insert_new(hash, make());
        (at, true)
    }

    fn insert_new(&mut self, hash: u64, value: T) -> usize {
        let mask = self.mask();
        let mut at = self.home(hash);
        while self.tags[at] != 0 {
            at = (at + 1) & mask;
        }
        self.tags[at] = tag(hash);
        self.slots[at] = Line(Some(value));
        self.len += 1;
        at
    }

    fn grow(&mut self, rehash: impl Fn(&T) -> u64) {
        let capacity = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, (0..capacity).map(|_| Line(None)).collect());
        self.tags = vec![0; capacity];
        self.len = 0;
        for value in old.into_iter().filter_map(|line| line.0) {
            self.insert_new(rehash(&value), value);
        }
    }

    pub(super) fn get(&self, at: usize) -> &T {
        self.slots[at].0.as_ref().expect("an index returned by find")
    }

    pub(super) fn get_mut(&mut self, at: usize) -> &mut T {
        self.slots[at].0.as_mut().expect("an index returned by find")
    }

    /// Removes the value at `at`, shifting back the run behind it so that
    /// every value stays reachable from its home slot (`rehash` gives a
    /// stored value's hash). Other indexes the caller holds become stale.
    pub(super) fn remove(&mut self, mut at: usize, rehash: impl Fn(&T) -> u64) -> T {
        let mask = self.mask();
        let removed = self.slots[at].0.take().expect("an index returned by find");
        self.tags[at] = 0;
        self.len -= 1;
        let mut next = (at + 1) & mask;
        while self.tags[next] != 0 {
            let home = self.home(rehash(self.slots[next].0.as_ref().expect("tagged slots hold a value")));
            // The value at `next` may move to the hole at `at` when its home
            // does not lie cyclically in (at, next].
            let stays = if at <= next { at < home && home <= next } else { at < home || home <= next };
            if !stays {
                self.slots[at] = Line(self.slots[next].0.take());
                self.tags[at] = self.tags[next];
                self.tags[next] = 0;
                at = next;
            }
            next = (next + 1) & mask;
        }
        removed
    }

    /// Bytes of the tag and slot arrays (the values' own heap is the
    /// caller's to add, through [`GroupTable::iter`]).
    pub(super) fn table_bytes(&self) -> usize {
        crate::memory::vec(&self.tags) + crate::memory::vec(&self.slots)
    }

    /// Every value, in slot order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().filter_map(|line| line.0.as_ref())
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub(super) fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().filter_map(|line| line.0.as_ref())
    }
}

/// A cache prefetch of the line holding `value`. The one `unsafe` block of
/// the workspace: the intrinsic is `unsafe` only because it takes a pointer.
#[inline]
#[allow(unsafe_code)]
fn prefetch<V>(value: &V) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it does not access memory
    // architecturally and cannot fault, and `value` is a live reference.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((value as *const V).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Item {
        hash: u64,
        key: u16,
        value: i64,
    }

    fn rehash(item: &Item) -> u64 {
        item.hash
    }

    /// A deliberately poor hash, so runs, wrap-around and shifts are common.
    fn hash_of(key: u16) -> u64 {
        u64::from(key % 37).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(key / 37)
    }

    proptest! {
        /// Random inserts, updates and removals agree with a HashMap.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((any::<u16>(), 0u8..3, any::<i64>()), 0..600)) {
            let mut table = GroupTable::<Item>::default();
            let mut model: HashMap<u16, i64> = HashMap::new();
            for (key, op, value) in ops {
                let key = key % 200;
                let hash = hash_of(key);
                table.prefetch(hash);
                match op {
                    0 | 1 => {
                        let (at, inserted) =
                            table.find_or_insert(hash, |i| i.key == key, || Item { hash, key, value: 0 }, rehash);
                        prop_assert_eq!(inserted, !model.contains_key(&key));
                        table.get_mut(at).value = value;
                        model.insert(key, value);
                    }
                    _ => {
                        let found = table.find(hash, |i| i.key == key);
                        prop_assert_eq!(found.is_some(), model.contains_key(&key));
                        if let Some(at) = found {
                            prop_assert_eq!(table.remove(at, rehash).value, model.remove(&key).unwrap());
                        }
                    }
                }
                prop_assert_eq!(table.len(), model.len());
            }
            for (key, value) in &model {
                let at = table.find(hash_of(*key), |i| i.key == *key).expect("present");
                prop_assert_eq!(table.get(at).value, *value);
            }
            prop_assert_eq!(table.values().count(), model.len());
        }
    }
}
