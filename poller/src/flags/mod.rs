//! The backends' flag translators: one pure function per backend turning the OS's readiness
//! flags into an [`Event`](crate::Event).
//!
//! They take plain integers and use constants copied from the OS headers, so each compiles
//! on its own OS *and* under `cfg(test)` everywhere: the kqueue and AFD translations are
//! unit-tested on Linux although their backends cannot be built there. Each backend checks
//! in its own tests that these constants equal its OS's.

#[cfg(any(test, target_os = "linux", target_os = "android"))]
pub(crate) mod epoll;

#[cfg(any(
    test,
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
))]
pub(crate) mod kqueue;

#[cfg(any(test, windows))]
pub(crate) mod afd;
