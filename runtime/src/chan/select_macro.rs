//! The `select!` macro: crossbeam-channel's syntax, Go's semantics.
//!
//! The macro stays thin: it parses the arms, binds one operation object per arm (a
//! [`RecvOp`](crate::chan::__private::RecvOp) or [`SendOp`](crate::chan::__private::SendOp))
//! and calls the one non-generic [`select`](crate::chan::__private::select) function over
//! them (select.rs). Then it runs the body of the arm that completed, *after* the operations
//! (and their borrows of the channels) are gone, so a body may use the channels freely.
//!
//! Expansion sketch for `select! { recv(r) -> m => a, send(s, v) -> res => b, default => c }`:
//!
//! ```text
//! let out0; let out1;
//! {
//!     let op0 = RecvOp::new(&r);
//!     let op1 = SendOp::new(&s, v);
//!     select(&[&op0, &op1], Timeout::Now);
//!     out0 = op0.take(); out1 = op1.take();
//! }
//! if let Some(res) = out0 { let m = res; a }
//! else if let Some(res) = out1 { let res = res; b }
//! else { c }
//! ```
//!
//! The per-arm names come from macro hygiene: each recursion step declares its own `__out`
//! and `__op`, and passes the identifier on, so the final step can name them all.

/// Waits on several channel operations and runs the arm of the one that completes.
///
/// Arms (any order, separated by commas; a block body needs no comma):
///
/// * `recv(r) -> msg => body`: receive from `r` (a [`Receiver`](crate::chan::Receiver) or a
///   reference to one); `msg` (a pattern) binds a `Result<T, RecvError>`: `Err` once the
///   channel is empty and every sender is gone.
/// * `send(s, value) -> res => body`: send `value` on `s`; `res` binds a
///   `Result<(), SendError<T>>`: `Err` (with the value) once every receiver is gone.
/// * `default => body`: run `body` if no operation can complete right now.
/// * `default(timeout) => body`: run `body` if none completes within `timeout`
///   (a `Duration`).
///
/// Without a `default` arm, `select!` waits (parks the coroutine or blocks the thread) until
/// one operation completes. When several are ready, one is picked at random, so no arm
/// starves. Like Go, all channel and message expressions are evaluated once, in order, when
/// the `select!` starts; the message of a `send` arm that is not chosen is dropped.
///
/// ```
/// use std::time::Duration;
/// use coronet_runtime::chan;
///
/// coronet_runtime::run(|| {
///     let (tx, rx) = chan::bounded::<u32>(1);
///     let (quit_tx, quit_rx) = chan::bounded::<()>(0);
///     coronet_runtime::spawn(move || {
///         for i in 0..3 {
///             tx.send(i).unwrap();
///         }
///         quit_tx.send(()).unwrap();
///     });
///     let mut got = Vec::new();
///     loop {
///         coronet_runtime::select! {
///             recv(rx) -> msg => got.push(msg.unwrap()),
///             recv(quit_rx) -> _ => break,
///             default(Duration::from_secs(10)) => panic!("stuck"),
///         }
///     }
///     // The quit message may overtake the last number: drain what is left.
///     got.extend(rx.try_iter());
///     assert_eq!(got, [0, 1, 2]);
/// });
/// ```
#[macro_export]
macro_rules! select {
    // ---- parsing: (@parse [arms] [default] tokens) -------------------------------------
    (@parse [$($arms:tt)*] $def:tt) => {
        $crate::select!(@outs [] [$($arms)*] $def)
    };
    (@parse [$($arms:tt)*] $def:tt
        recv($r:expr) -> $p:pat => $body:block, $($rest:tt)*) => {
        $crate::select!(@parse [$($arms)* (recv ($r) ($p) {$body})] $def $($rest)*)
    };
    (@parse [$($arms:tt)*] $def:tt
        recv($r:expr) -> $p:pat => $body:block $($rest:tt)*) => {
        $crate::select!(@parse [$($arms)* (recv ($r) ($p) {$body})] $def $($rest)*)
    };
    (@parse [$($arms:tt)*] $def:tt
        recv($r:expr) -> $p:pat => $body:expr, $($rest:tt)*) => {
        $crate::select!(@parse [$($arms)* (recv ($r) ($p) {$body})] $def $($rest)*)
    };
    (@parse [$($arms:tt)*] $def:tt
        recv($r:expr) -> $p:pat => $body:expr) => {
        $crate::select!(@parse [$($arms)* (recv ($r) ($p) {$body})] $def)
    };
    (@parse [$($arms:tt)*] $def:tt
        send($s:expr, $m:expr) -> $p:pat => $body:block, $($rest:tt)*) => {
        $crate::select!(@parse [$($arms)* (send ($s, $m) ($p) {$body})] $def $($rest)*)
    };
    (@parse [$($arms:tt)*] $def:tt
        send($s:expr, $m:expr) -> $p:pat => $body:block $($rest:tt)*) => {
        $crate::select!(@parse [$($arms)* (send ($s, $m) ($p) {$body})] $def $($rest)*)
    };
    (@parse [$($arms:tt)*] $def:tt
        send($s:expr, $m:expr) -> $p:pat => $body:expr, $($rest:tt)*) => {
        $crate::select!(@parse [$($arms)* (send ($s, $m) ($p) {$body})] $def $($rest)*)
    };
    (@parse [$($arms:tt)*] $def:tt
        send($s:expr, $m:expr) -> $p:pat => $body:expr) => {
        $crate::select!(@parse [$($arms)* (send ($s, $m) ($p) {$body})] $def)
    };
    (@parse $arms:tt [] default => $body:block, $($rest:tt)*) => {
        $crate::select!(@parse $arms [(now) {$body}] $($rest)*)
    };
    (@parse $arms:tt [] default => $body:block $($rest:tt)*) => {
        $crate::select!(@parse $arms [(now) {$body}] $($rest)*)
    };
    (@parse $arms:tt [] default => $body:expr, $($rest:tt)*) => {
        $crate::select!(@parse $arms [(now) {$body}] $($rest)*)
    };
    (@parse $arms:tt [] default => $body:expr) => {
        $crate::select!(@parse $arms [(now) {$body}])
    };
    (@parse $arms:tt [] default($t:expr) => $body:block, $($rest:tt)*) => {
        $crate::select!(@parse $arms [(after $t) {$body}] $($rest)*)
    };
    (@parse $arms:tt [] default($t:expr) => $body:block $($rest:tt)*) => {
        $crate::select!(@parse $arms [(after $t) {$body}] $($rest)*)
    };
    (@parse $arms:tt [] default($t:expr) => $body:expr, $($rest:tt)*) => {
        $crate::select!(@parse $arms [(after $t) {$body}] $($rest)*)
    };
    (@parse $arms:tt [] default($t:expr) => $body:expr) => {
        $crate::select!(@parse $arms [(after $t) {$body}])
    };
    (@parse $arms:tt [$($def:tt)+] default $($rest:tt)*) => {
        ::core::compile_error!("coronet::select!: more than one `default` arm")
    };
    (@parse $arms:tt $def:tt $($rest:tt)+) => {
        ::core::compile_error!(
            "coronet::select!: expected `recv(r) -> pattern => body`, \
             `send(s, message) -> pattern => body`, `default => body` or \
             `default(timeout) => body`"
        )
    };

    // ---- one result variable per arm: (@outs [done] [todo] default) ---------------------
    (@outs [$($done:tt)*] [] $def:tt) => {{
        $crate::select!(@ops [] [$($done)*] $def);
        $crate::select!(@dispatch [$($done)*] $def)
    }};
    (@outs [$($done:tt)*] [($kind:ident $args:tt $p:tt $body:tt) $($rest:tt)*] $def:tt) => {{
        let __out;
        $crate::select!(@outs [$($done)* ($kind $args $p $body __out)] [$($rest)*] $def)
    }};

    // ---- one operation per arm, then the select call: (@ops [ops] [todo] default) -------
    (@ops [$(($op:ident $out:ident))*] [] $def:tt) => {{
        $crate::chan::__private::select(
            &[$(&$op as &dyn $crate::chan::__private::Operation),*],
            $crate::select!(@timeout $def),
        );
        $($out = $op.take();)*
    }};
    (@ops [$($ops:tt)*] [(recv ($r:expr) $p:tt $body:tt $out:ident) $($rest:tt)*] $def:tt) => {{
        let __chan = &$r;
        let __op = $crate::chan::__private::RecvOp::new(__chan);
        $crate::select!(@ops [$($ops)* (__op $out)] [$($rest)*] $def)
    }};
    (@ops [$($ops:tt)*] [(send ($s:expr, $m:expr) $p:tt $body:tt $out:ident) $($rest:tt)*]
        $def:tt) => {{
        let __chan = &$s;
        let __op = $crate::chan::__private::SendOp::new(__chan, $m);
        $crate::select!(@ops [$($ops)* (__op $out)] [$($rest)*] $def)
    }};

    (@timeout []) => { $crate::chan::__private::Timeout::Never };
    (@timeout [(now) $body:tt]) => { $crate::chan::__private::Timeout::Now };
    (@timeout [(after $t:expr) $body:tt]) => { $crate::chan::__private::Timeout::After($t) };

    // ---- run the body of the arm that completed -----------------------------------------
    (@dispatch [$(($kind:ident $args:tt ($p:pat) $body:tt $out:ident))*] $def:tt) => {
        $(
            if let ::core::option::Option::Some(__result) = $out {
                let $p = __result;
                $body
            } else
        )* {
            $crate::select!(@default $def)
        }
    };
    (@default []) => {
        ::core::unreachable!("coronet::select!: woken without a completed operation")
    };
    (@default [$mode:tt $body:tt]) => { $body };

    // ---- entry ----------------------------------------------------------------------------
    ($($tokens:tt)*) => {
        $crate::select!(@parse [] [] $($tokens)*)
    };
}
