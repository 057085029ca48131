//! The keyspace: string keys to string values with optional expiry, split over shards that
//! each sit behind their own coroutine-aware mutex.
//!
//! Why shards: every connection coroutine touches the keyspace on every command, and the
//! coroutines run on several worker threads. One lock would make every worker queue behind
//! it; with [`SHARDS`] locks two commands contend only if their keys hash to the same shard.
//! `coronet::sync::Mutex` (not `std`'s) because a coroutine that finds the shard locked
//! must park, letting its worker run other coroutines, rather than block the thread. No
//! lock is ever held across I/O, so the critical sections are short.
//!
//! Multi-key commands (`MSET`, `MGET`, `DEL`, `EXISTS`, `FLUSHALL`) lock every shard they
//! need at once, always in increasing shard order, which makes them atomic as in Redis
//! and rules out deadlock between two of them.
//!
//! Expiry times are Unix milliseconds, as in Redis (so `EXPIREAT`-style absolute times and
//! `TTL` arithmetic match it). A key is expired once the clock is past its time. Expired
//! keys are removed lazily, by the first command that looks at them, and actively by
//! [`Db::sweep`], which the server calls from a sweeper coroutine every 100 ms (Redis's
//! active expire cycle). Each shard indexes its expiring keys by deadline, so a sweep
//! visits only keys that are due.

use std::collections::hash_map::{Entry as MapEntry, HashMap, RandomState};
use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::sync::PoisonError;
use std::time::{SystemTime, UNIX_EPOCH};

use coronet::sync::{Mutex, MutexGuard};

/// The number of shards: a power of two well above the worker count of a typical machine,
/// so that two busy workers rarely want the same shard.
pub const SHARDS: usize = 64;

/// The current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A stored value.
#[derive(Debug)]
pub struct Entry {
    /// The string value.
    pub value: Vec<u8>,
    /// When it expires, in Unix milliseconds; `None` for never.
    pub expires_at: Option<i64>,
}

/// One shard: its keys, and an index of the keys that have an expiry.
///
/// Invariant: `(t, key)` is in `expiring` exactly when `entries[key].expires_at ==
/// Some(t)`. All changes go through the methods below, which keep it.
#[derive(Debug, Default)]
pub struct Shard {
    entries: HashMap<Vec<u8>, Entry>,
    expiring: BTreeSet<(i64, Vec<u8>)>,
}

impl Shard {
    /// The live entry for `key`, removing it first if it has expired at `now`.
    pub fn live(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
        let expired = match self.entries.get(key) {
            None => return None,
            Some(entry) => entry.expires_at.is_some_and(|t| now > t),
        };
        if expired {
            self.remove(key);
            return None;
        }
        self.entries.get_mut(key)
    }

    /// Stores `value` under `key` with the expiry `expires_at` (replacing any old one).
    pub fn set(&mut self, key: &[u8], value: Vec<u8>, expires_at: Option<i64>) {
        match self.entries.entry(key.to_vec()) {
            MapEntry::Occupied(mut occupied) => {
                let old = occupied.get().expires_at;
                occupied.get_mut().value = value;
                if old != expires_at {
                    occupied.get_mut().expires_at = expires_at;
                    reindex(&mut self.expiring, key, old, expires_at);
                }
            }
            MapEntry::Vacant(vacant) => {
                vacant.insert(Entry { value, expires_at });
                reindex(&mut self.expiring, key, None, expires_at);
            }
        }
    }

    /// Changes the expiry of an existing `key`; returns whether the key exists.
    pub fn set_expiry(&mut self, key: &[u8], expires_at: Option<i64>) -> bool {
        let Some(entry) = self.entries.get_mut(key) else {
            return false;
        };
        let old = std::mem::replace(&mut entry.expires_at, expires_at);
        reindex(&mut self.expiring, key, old, expires_at);
        true
    }

    /// Removes `key`; returns whether it was there (expired or not).
    pub fn remove(&mut self, key: &[u8]) -> bool {
        match self.entries.remove(key) {
            Some(entry) => {
                reindex(&mut self.expiring, key, entry.expires_at, None);
                true
            }
            None => false,
        }
    }

    /// The number of keys, counting expired ones not yet removed (as Redis's `DBSIZE`).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.expiring.clear();
    }

    /// Removes up to `budget` keys that expired at `now`, earliest first; returns how many.
    pub fn remove_expired(&mut self, now: i64, budget: usize) -> usize {
        let mut removed = 0;
        while removed < budget {
            match self.expiring.first() {
                Some((t, _)) if now > *t => {}
                _ => break,
            }
            let (_, key) = self.expiring.pop_first().expect("checked above");
            self.entries.remove(&key);
            removed += 1;
        }
        removed
    }
}

/// Moves `key` in the expiry index from `old` to `new`.
fn reindex(
    expiring: &mut BTreeSet<(i64, Vec<u8>)>,
    key: &[u8],
    old: Option<i64>,
    new: Option<i64>,
) {
    if old == new {
        return;
    }
    if let Some(t) = old {
        expiring.remove(&(t, key.to_vec()));
    }
    if let Some(t) = new {
        expiring.insert((t, key.to_vec()));
    }
}

/// The sharded keyspace, shared by every connection (behind an `Arc`).
pub struct Db {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

impl Default for Db {
    fn default() -> Db {
        Db::new()
    }
}

impl Db {
    /// An empty keyspace.
    pub fn new() -> Db {
        Db {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
        }
    }

    /// The shard `key` lives in.
    fn shard_index(&self, key: &[u8]) -> usize {
        (self.hasher.hash_one(key) as usize) % SHARDS
    }

    /// Locks shard `index`. A panic in another command while it held the lock leaves the
    /// shard consistent (every method keeps the invariant before anything can panic), so
    /// poisoning is ignored.
    fn lock_index(&self, index: usize) -> MutexGuard<'_, Shard> {
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks the shard of `key`.
    pub fn lock(&self, key: &[u8]) -> MutexGuard<'_, Shard> {
        self.lock_index(self.shard_index(key))
    }

    /// Locks the shards of all `keys` at once, in increasing shard order (so two callers
    /// can never deadlock), for a multi-key command that must be atomic.
    pub fn lock_many<'a, K: AsRef<[u8]>>(
        &'a self,
        keys: impl IntoIterator<Item = K>,
    ) -> Locked<'a> {
        let mut indices: Vec<usize> = keys
            .into_iter()
            .map(|key| self.shard_index(key.as_ref()))
            .collect();
        indices.sort_unstable();
        indices.dedup();
        Locked {
            db: self,
            guards: indices
                .into_iter()
                .map(|i| (i, self.lock_index(i)))
                .collect(),
        }
    }

    /// Locks every shard, in order.
    pub fn lock_all(&self) -> Locked<'_> {
        Locked {
            db: self,
            guards: (0..SHARDS).map(|i| (i, self.lock_index(i))).collect(),
        }
    }

    /// The number of keys (see [`Shard::len`]). Shards are counted one after another, so
    /// under concurrent writes the sum is a close, not an atomic, figure, as Redis's is
    /// per-command.
    pub fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.lock_index(i).len()).sum()
    }

    /// One active-expiry pass: removes up to `budget_per_shard` expired keys from each
    /// shard, locking one shard at a time. Returns the number removed and whether some
    /// shard had more due than its budget (the caller should sweep again soon).
    pub fn sweep(&self, now: i64, budget_per_shard: usize) -> (usize, bool) {
        let mut removed = 0;
        let mut more = false;
        for index in 0..SHARDS {
            let n = self.lock_index(index).remove_expired(now, budget_per_shard);
            removed += n;
            more |= n == budget_per_shard;
        }
        (removed, more)
    }
}

/// Several shards locked together (see [`Db::lock_many`]).
pub struct Locked<'a> {
    db: &'a Db,
    /// Sorted by shard index.
    guards: Vec<(usize, MutexGuard<'a, Shard>)>,
}

impl Locked<'_> {
    /// The shard of `key`, which must be one of the keys given to [`Db::lock_many`].
    pub fn shard(&mut self, key: &[u8]) -> &mut Shard {
        let index = self.db.shard_index(key);
        let at = self
            .guards
            .binary_search_by_key(&index, |(i, _)| *i)
            .expect("key's shard was not locked");
        &mut self.guards[at].1
    }

    /// Runs `f` on every locked shard.
    pub fn for_each_shard(&mut self, mut f: impl FnMut(&mut Shard)) {
        for (_, guard) in &mut self.guards {
            f(guard);
        }
    }
}
