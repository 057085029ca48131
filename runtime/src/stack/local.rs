//! The per-worker stack cache.

use std::io;

use super::pool::{allocate, carve_batch, give_back, release, take_idle};
use super::{class_size, PooledStack, RawStack, LOCAL_CLASSES, LOCAL_PER_CLASS};

/// A per-worker stack cache: owned by one worker thread, no locking.
///
/// Go's `stackcache` scheme: an empty class is refilled with half of [`LOCAL_PER_CLASS`]
/// stacks from the global pool; a class that grows past it gives half back. One lock
/// acquisition moves many stacks, and a worker that spawns and finishes coroutines at the
/// same rate never touches the global pool.
pub(crate) struct LocalCache {
    classes: Vec<LocalClass>,
}

struct LocalClass {
    size: usize,
    stacks: Vec<RawStack>,
}

impl LocalCache {
    /// An empty cache.
    pub(crate) fn new() -> LocalCache {
        LocalCache {
            classes: Vec::new(),
        }
    }

    /// The cache entry for class `size`, created if there is room for another class.
    #[inline]
    fn class(&mut self, size: usize) -> Option<&mut LocalClass> {
        match self.classes.iter().position(|c| c.size == size) {
            Some(index) => Some(&mut self.classes[index]),
            None => self.add_class(size),
        }
    }

    #[cold]
    fn add_class(&mut self, size: usize) -> Option<&mut LocalClass> {
        if self.classes.len() >= LOCAL_CLASSES {
            return None;
        }
        self.classes.push(LocalClass {
            size,
            stacks: Vec::with_capacity(LOCAL_PER_CLASS + 1),
        });
        self.classes.last_mut()
    }

    /// Allocates a stack of at least `size` usable bytes: from this cache if it holds one of
    /// that class, else from the global pool (taking a batch), else carved (a batch too).
    pub(crate) fn allocate(&mut self, size: usize) -> io::Result<PooledStack> {
        let size = class_size(size)?;
        let Some(class) = self.class(size) else {
            return allocate(size);
        };
        if class.stacks.is_empty() {
            take_idle(size, &mut class.stacks, LOCAL_PER_CLASS / 2);
        }
        if class.stacks.is_empty() {
            carve_batch(size, LOCAL_PER_CLASS / 2, &mut class.stacks)?;
        }
        let raw = class
            .stacks
            .pop()
            .expect("a refill or a carve added a stack");
        Ok(PooledStack::new(raw))
    }

    /// Keeps `stack` for reuse by this worker; past [`LOCAL_PER_CLASS`] stacks of its class,
    /// half of them go to the global pool.
    pub(crate) fn release(&mut self, stack: PooledStack) {
        let Some(class) = self.class(stack.size()) else {
            return release(stack);
        };
        class.stacks.push(stack.into_raw());
        if class.stacks.len() > LOCAL_PER_CLASS {
            give_back(&mut class.stacks, LOCAL_PER_CLASS / 2);
        }
    }
}

impl Default for LocalCache {
    fn default() -> LocalCache {
        LocalCache::new()
    }
}

impl Drop for LocalCache {
    fn drop(&mut self) {
        for class in &mut self.classes {
            give_back(&mut class.stacks, 0);
        }
    }
}
