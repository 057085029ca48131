//! What [`Mutex`](super::Mutex) and [`RwLock`](super::RwLock) share around their guards:
//! the `Deref`/`DerefMut` and formatting impls of the guard types, the `Default`/`From`
//! impls of the lock types, and the `Debug` of a lock, which shows its value if it can be
//! locked without waiting.
//!
//! Each lock keeps its own algorithm; only code whose logic is the same for both lives
//! here. The macros generate exactly the impls the types had when they were written out by
//! hand, so the public API is unchanged.

use std::fmt;
use std::ops::Deref;
use std::sync::TryLockError;

use crate::sync::mutex::Poison;

/// Implements `Deref` for a guard (and `DerefMut` with `mut`) that reaches its lock through
/// the field `$lock` and the value through that lock's `data: UnsafeCell<T>`.
///
/// Use it only for guard types that exist only while their lock is held: `Deref` for guards
/// whose lock mode excludes writers (any guard), `mut` only for guards whose lock mode is
/// exclusive (`MutexGuard`, `RwLockWriteGuard`).
macro_rules! guard_deref {
    ($guard:ident . $lock:ident) => {
        impl<T: ?Sized> ::std::ops::Deref for $guard<'_, T> {
            type Target = T;

            fn deref(&self) -> &T {
                // SAFETY: the guard exists only while its lock is held in a mode that
                // excludes writers (the macro's contract), so nobody mutates the data while
                // this `&T` lives.
                unsafe { &*self.$lock.data.get() }
            }
        }
    };
    ($guard:ident . $lock:ident, mut) => {
        $crate::sync::guard::guard_deref!($guard.$lock);

        impl<T: ?Sized> ::std::ops::DerefMut for $guard<'_, T> {
            fn deref_mut(&mut self) -> &mut T {
                // SAFETY: a guard given `mut` exists only while its lock is held exclusively
                // (the macro's contract), and `&mut self` makes the access through it unique.
                unsafe { &mut *self.$lock.data.get() }
            }
        }
    };
}
pub(crate) use guard_deref;

/// Implements each named `std::fmt` trait (`Debug`, `Display`) for a guard by forwarding to
/// the guarded value, as std's guards do.
macro_rules! guard_fmt {
    ($guard:ident: $($format:ident),+) => {
        $(
            impl<T: ?Sized + ::std::fmt::$format> ::std::fmt::$format for $guard<'_, T> {
                fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                    ::std::fmt::$format::fmt(&**self, f)
                }
            }
        )+
    };
}
pub(crate) use guard_fmt;

/// Implements `Default` (a lock around `T::default()`) and `From<T>` for a lock type with a
/// `const fn new(T)`.
macro_rules! lock_from_value {
    ($lock:ident) => {
        impl<T: Default> Default for $lock<T> {
            fn default() -> $lock<T> {
                $lock::new(T::default())
            }
        }

        impl<T> From<T> for $lock<T> {
            fn from(value: T) -> $lock<T> {
                $lock::new(value)
            }
        }
    };
}
pub(crate) use lock_from_value;

/// The `Debug` of a lock named `name`: its value if `attempt` (a non-waiting lock attempt)
/// got it, even if poisoned, `<locked>` if it would have had to wait; then whether `poison`
/// is set, read after the attempt's guard is released.
pub(crate) fn debug_lock<G>(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    attempt: Result<G, TryLockError<G>>,
    poison: &Poison,
) -> fmt::Result
where
    G: Deref,
    G::Target: fmt::Debug,
{
    let mut d = f.debug_struct(name);
    match attempt {
        Ok(guard) => d.field("data", &&*guard),
        Err(TryLockError::Poisoned(err)) => d.field("data", &&**err.get_ref()),
        Err(TryLockError::WouldBlock) => d.field("data", &format_args!("<locked>")),
    };
    d.field("poisoned", &poison.get());
    d.finish_non_exhaustive()
}

#[cfg(test)]
mod tests {
    use crate::sync::{Mutex, RwLock};

    /// Poisons `lock` by panicking (on a plain thread) while `hold` keeps a guard.
    fn poison<L: Sync>(lock: &L, hold: impl Fn(&L) + Sync) {
        std::thread::scope(|scope| {
            let holder = scope.spawn(|| {
                hold(lock);
            });
            assert!(holder.join().is_err());
        });
    }

    #[test]
    fn mutex_and_guard_format_as_std_does() {
        let mutex = Mutex::new(5);
        assert_eq!(
            format!("{mutex:?}"),
            "Mutex { data: 5, poisoned: false, .. }"
        );
        {
            let guard = mutex.lock().unwrap();
            assert_eq!(format!("{guard:?} {guard}"), "5 5");
            assert_eq!(
                format!("{mutex:?}"),
                "Mutex { data: <locked>, poisoned: false, .. }"
            );
        }
        poison(&mutex, |mutex| {
            let _guard = mutex.lock().unwrap();
            panic!("poisoning on purpose");
        });
        assert_eq!(
            format!("{mutex:?}"),
            "Mutex { data: 5, poisoned: true, .. }"
        );
        assert_eq!(Mutex::<u8>::default().into_inner().unwrap(), 0);
        assert_eq!(Mutex::from(7).into_inner().unwrap(), 7);
    }

    #[test]
    fn rwlock_and_guards_format_as_std_does() {
        let lock = RwLock::new("x");
        assert_eq!(
            format!("{lock:?}"),
            "RwLock { data: \"x\", poisoned: false, .. }"
        );
        {
            let read = lock.read().unwrap();
            assert_eq!(format!("{read:?}"), "\"x\"");
            // Readers do not stop `Debug` from reading the value.
            assert_eq!(
                format!("{lock:?}"),
                "RwLock { data: \"x\", poisoned: false, .. }"
            );
        }
        {
            let mut write = lock.write().unwrap();
            *write = "y";
            assert_eq!(format!("{write:?}"), "\"y\"");
            assert_eq!(
                format!("{lock:?}"),
                "RwLock { data: <locked>, poisoned: false, .. }"
            );
        }
        poison(&lock, |lock| {
            let _guard = lock.write().unwrap();
            panic!("poisoning on purpose");
        });
        assert_eq!(
            format!("{lock:?}"),
            "RwLock { data: \"y\", poisoned: true, .. }"
        );
        let mut lock = lock;
        assert_eq!(*lock.get_mut().unwrap_err().into_inner(), "y");
        assert_eq!(lock.into_inner().unwrap_err().into_inner(), "y");
        assert_eq!(RwLock::<u8>::default().into_inner().unwrap(), 0);
        assert_eq!(RwLock::from(7).into_inner().unwrap(), 7);
    }
}
