//! Counters incremented on every read (`denorm_reads_total{view,role}`,
//! `denorm_http_requests_total{route,status}`) found by borrowed keys: a
//! `Family` lookup needs an owned label set, which cost two or three
//! `String` allocations (and frees) per request. The first increment of a
//! label set creates its counter in the family, as before, and keeps a
//! handle to it here (a `Counter` is shared, not copied, by `clone`); later
//! ones take a read lock and two hash lookups by `&str`.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{PoisonError, RwLock};

use prometheus_client::metrics::counter::Counter;

/// Counter handles by an outer `&str` key and an inner key.
#[derive(Debug)]
pub(super) struct HotCounters<K> {
    map: RwLock<HashMap<String, HashMap<K, Counter>>>,
}

impl<K> Default for HotCounters<K> {
    fn default() -> Self {
        HotCounters { map: RwLock::new(HashMap::new()) }
    }
}

impl<K: Hash + Eq> HotCounters<K> {
    /// Increments the counter of `(outer, inner)`; `create` makes it (in
    /// its family) the first time.
    pub(super) fn inc<Q>(&self, outer: &str, inner: &Q, create: impl FnOnce() -> Counter)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(counter) = map.get(outer).and_then(|m| m.get(inner)) {
            counter.inc();
            return;
        }
        drop(map);
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        let counters = map.entry(outer.to_owned()).or_default();
        counters.entry(inner.to_owned()).or_insert_with(create).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::family::Family;

    /// The cached handles count into the family's series, one per label
    /// set, exactly as `get_or_create(..).inc()` does.
    #[test]
    fn cached_counters_are_the_family_series() {
        let family: Family<Vec<(String, String)>, Counter> = Family::default();
        let hot: HotCounters<String> = HotCounters::default();
        let label = |a: &str, b: &str| vec![("a".to_string(), a.to_string()), ("b".to_string(), b.to_string())];
        for (a, b) in [("v", "r"), ("v", "r"), ("v", "s"), ("w", "r"), ("v", "r")] {
            hot.inc(a, b, || family.get_or_create(&label(a, b)).clone());
        }
        assert_eq!(family.get_or_create(&label("v", "r")).get(), 3);
        assert_eq!(family.get_or_create(&label("v", "s")).get(), 1);
        assert_eq!(family.get_or_create(&label("w", "r")).get(), 1);
        let statuses: HotCounters<u16> = HotCounters::default();
        statuses.inc("/views/{name}", &200, || family.get_or_create(&label("x", "200")).clone());
        statuses.inc("/views/{name}", &200, || unreachable!("cached"));
        assert_eq!(family.get_or_create(&label("x", "200")).get(), 2);
    }
}
