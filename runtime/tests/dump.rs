//! `runtime::dump()`: every coroutine with what it waits on, where it was spawned, and
//! backtraces of parked coroutines; the SIGQUIT dump and schedtrace in child processes.
// Unix only: parks coroutines on Unix socket pairs and sends SIGQUIT (Windows: Ctrl-Break,
// which a test cannot send to its own console child under Wine).
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use coronet_runtime::io::{Interest, Registration};
use coronet_runtime::runtime::{
    wait_until_parked, Builder, CoroutineState, DumpDisplay, WaitKind, WaitReason,
};

const PATIENCE: Duration = Duration::from_secs(60);

#[inline(never)]
fn parks_here_for_the_dump(release: Arc<AtomicBool>) {
    while !release.load(Ordering::SeqCst) {
        coronet_runtime::park();
    }
}

#[test]
fn parked_coroutines_show_their_reason_and_spawn_location() {
    let rt = Builder::new().workers(2).build().unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let (a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();

    let parker = {
        let release = release.clone();
        rt.spawn(move || parks_here_for_the_dump(release))
    };
    let park_line = line!() - 2;
    let sleeper = rt.spawn(|| coronet_runtime::sleep(Duration::from_secs(3600)));
    let reader = coronet_runtime::coroutine::Builder::new()
        .name("socket-reader".into())
        .spawn_on(&rt, move || {
            let registration = Registration::new(a.as_raw_fd()).unwrap();
            let mut buf = [0u8; 1];
            loop {
                let since = registration.readiness(Interest::Read);
                match (&a).read(&mut buf) {
                    Ok(n) => return n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        registration.wait_since(Interest::Read, since).unwrap()
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        })
        .unwrap();
    let join_waiter = {
        let target = rt.spawn(|| coronet_runtime::sleep(Duration::from_secs(3600)));
        let target_id = target.coroutine().id();
        (rt.spawn(move || target.join().is_ok()), target_id)
    };

    let (tx, rx) = coronet_runtime::chan::bounded::<u8>(0);
    let receiver = rt.spawn(move || rx.recv().unwrap());
    let lock = Arc::new(coronet_runtime::sync::Mutex::new(0u32));
    let guard = lock.lock().unwrap();
    let locker = {
        let lock = lock.clone();
        rt.spawn(move || *lock.lock().unwrap() + 1)
    };
    let parked_on = |c: &coronet_runtime::Coroutine, kind| wait_until_parked(c, kind, PATIENCE);
    assert!(parked_on(receiver.coroutine(), WaitKind::Channel));
    assert!(parked_on(locker.coroutine(), WaitKind::Lock));
    assert!(parked_on(parker.coroutine(), WaitKind::Park));
    assert!(wait_until_parked(
        sleeper.coroutine(),
        WaitKind::Sleep,
        PATIENCE
    ));
    assert!(wait_until_parked(
        reader.coroutine(),
        WaitKind::Readable,
        PATIENCE
    ));
    assert!(wait_until_parked(
        join_waiter.0.coroutine(),
        WaitKind::Join,
        PATIENCE
    ));

    let dump = rt.dump_with_backtraces();
    let find = |id| dump.iter().find(|c| c.id == id).expect("coroutine in dump");

    let parked = find(parker.coroutine().id());
    assert_eq!(parked.state, CoroutineState::Parked);
    assert_eq!(parked.wait, Some(WaitReason::Park));
    assert!(parked.spawned_at.file().ends_with("dump.rs"));
    assert_eq!(parked.spawned_at.line(), park_line);
    let backtrace = parked
        .backtrace
        .as_ref()
        .expect("parked coroutines have a backtrace")
        .to_string();
    assert!(backtrace.contains("parks_here_for_the_dump"), "{backtrace}");

    let sleeping = find(sleeper.coroutine().id());
    assert!(matches!(sleeping.wait, Some(WaitReason::Sleep { .. })));
    assert!(sleeping.deadline.is_some());

    let reading = find(reader.coroutine().id());
    assert_eq!(reading.name.as_deref(), Some("socket-reader"));
    assert!(matches!(reading.wait, Some(WaitReason::Readable { .. })));

    let joining = find(join_waiter.0.coroutine().id());
    assert_eq!(
        joining.wait,
        Some(WaitReason::Join {
            coroutine: join_waiter.1.as_u64().get()
        })
    );

    let text = DumpDisplay(&dump).to_string();
    assert!(text.contains("\"socket-reader\" [readable fd"), "{text}");
    assert!(text.contains("[timer, fires in"), "{text}");

    assert_eq!(
        find(receiver.coroutine().id()).wait,
        Some(WaitReason::Channel)
    );
    assert_eq!(find(locker.coroutine().id()).wait, Some(WaitReason::Lock));
    assert!(text.contains("[channel"), "{text}");
    assert!(text.contains("[lock"), "{text}");

    // The capture did not wake anything for real; the parked coroutines still work.
    tx.send(7).unwrap();
    assert_eq!(receiver.join().unwrap(), 7);
    drop(guard);
    assert_eq!(locker.join().unwrap(), 1);
    release.store(true, Ordering::SeqCst);
    parker.coroutine().unpark();
    parker.join().unwrap();
    b.write_all(b"x").unwrap();
    assert_eq!(reader.join().unwrap(), 1);
}

#[test]
fn a_dump_of_100k_parked_coroutines_does_not_stop_the_runtime() {
    let rt = Builder::new().workers(2).build().unwrap();
    let parked = Arc::new(AtomicU64::new(0));
    rt.block_on({
        let parked = parked.clone();
        move || {
            for _ in 0..100_000 {
                let parked = parked.clone();
                coronet_runtime::spawn(move || {
                    parked.fetch_add(1, Ordering::SeqCst);
                    loop {
                        coronet_runtime::park();
                    }
                });
            }
        }
    });
    // A ping-pong keeps running while the dump walks the coroutines.
    let (to_pong, pong_rx) = mpsc::channel::<u32>();
    let rounds = rt.spawn(move || {
        let mut n = 0;
        while let Ok(v) = pong_rx.recv() {
            n += v;
            coronet_runtime::yield_now();
        }
        n
    });
    let dump = rt.dump();
    assert!(dump.len() >= 100_000, "{}", dump.len());
    for _ in 0..1000 {
        to_pong.send(1).unwrap();
    }
    drop(to_pong);
    assert_eq!(rounds.join().unwrap(), 1000);
}

/// Runs this test binary as a child with `env` set, running only `test`.
fn child(test: &str, env: (&str, &str)) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(env.0, env.1)
        .env("CORONET_DUMP_CHILD", "1");
    command
}

#[test]
fn sigquit_prints_a_dump_and_the_process_continues() {
    if std::env::var_os("CORONET_DUMP_CHILD").is_some() {
        let rt = Builder::new().workers(1).build().unwrap();
        let napper = coronet_runtime::coroutine::Builder::new()
            .name("napping-for-sigquit".into())
            .spawn_on(&rt, || coronet_runtime::sleep(Duration::from_secs(3600)))
            .unwrap();
        assert!(wait_until_parked(
            napper.coroutine(),
            WaitKind::Sleep,
            PATIENCE
        ));
        println!("ready");
        // Wait for the parent to say it saw the dump, then prove we are alive.
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).unwrap();
        println!("still alive after {}", line.trim());
        return;
    }
    let mut child = child(
        "sigquit_prints_a_dump_and_the_process_continues",
        ("CORONET_DUMP_SIGNAL", "1"),
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ready") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "child ended early"
        );
    }
    // SAFETY: kill has no memory-safety preconditions; the pid is our live child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGQUIT) };
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("napping-for-sigquit") {
        let mut l = String::new();
        assert!(
            stderr.read_line(&mut l).unwrap() > 0,
            "no dump on stderr: {seen}"
        );
        seen.push_str(&l);
    }
    assert!(seen.contains("[timer"), "{seen}");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"the dump\n")
        .unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("still alive after the dump"), "{rest}");
    assert!(child.wait().unwrap().success());
}

#[test]
fn schedtrace_prints_the_expected_fields() {
    if std::env::var_os("CORONET_DUMP_CHILD").is_some() {
        let rt = Builder::new().workers(1).build().unwrap();
        // Live until the parent has read a line and closes our stdin.
        rt.block_on(|| {
            coronet_runtime::blocking(|| {
                let mut sink = String::new();
                let _ = std::io::stdin().read_to_string(&mut sink);
            })
        });
        return;
    }
    let mut child = child(
        "schedtrace_prints_the_expected_fields",
        ("CORONET_SCHEDTRACE", "10"),
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("schedtrace") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no schedtrace line"
        );
    }
    for field in [
        "workers=",
        "idle=",
        "running=",
        "runnable=",
        "parked=",
        "spawned=",
        "steals=",
        "polls=",
        "blocking=",
        "handoffs=",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

#[test]
fn dumps_taken_while_coroutines_come_and_go_list_only_this_runtimes_live_ones() {
    // The dump finds coroutines by scanning every control block of the process: blocks are
    // freed and reused by other coroutines (of this runtime and of another one) while it
    // scans. It must list exactly this runtime's unfinished coroutines: the parked one
    // always, the other runtime's never, and never a coroutine twice.
    let rt = Builder::new().workers(2).build().unwrap();
    let other = Builder::new().workers(1).build().unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let parked = {
        let release = release.clone();
        coronet_runtime::coroutine::Builder::new()
            .name("parked-here".into())
            .spawn_on(&rt, move || parks_here_for_the_dump(release))
            .unwrap()
    };
    let foreign = {
        let release = release.clone();
        coronet_runtime::coroutine::Builder::new()
            .name("other-runtime".into())
            .spawn_on(&other, move || parks_here_for_the_dump(release))
            .unwrap()
    };
    let parked_id = parked.coroutine().id();
    assert!(wait_until_parked(
        parked.coroutine(),
        WaitKind::Any,
        PATIENCE
    ));
    assert!(wait_until_parked(
        foreign.coroutine(),
        WaitKind::Any,
        PATIENCE
    ));
    let churn = |rt: &coronet_runtime::runtime::Runtime| {
        rt.spawn(|| {
            for round in 0..1000u64 {
                let children: Vec<_> = (0..100u64)
                    .map(|i| coronet_runtime::spawn(move || round * i))
                    .collect();
                for child in children {
                    child.join().unwrap();
                }
            }
        })
    };
    let churn_here = churn(&rt);
    let churn_there = churn(&other);
    let mut dumps = 0;
    while !(churn_here.is_finished() && churn_there.is_finished()) || dumps < 10 {
        let dump = rt.dump();
        dumps += 1;
        assert!(
            dump.iter().any(|c| c.id == parked_id),
            "the parked one is missing"
        );
        assert!(
            dump.iter()
                .all(|c| c.name.as_deref() != Some("other-runtime")),
            "another runtime's coroutine is listed"
        );
        assert!(
            dump.windows(2)
                .all(|pair| pair[0].id.as_u64() < pair[1].id.as_u64()),
            "ids are listed once each, in order"
        );
        assert!(dumps < 1_000_000, "the churn did not end");
    }
    churn_here.join().unwrap();
    churn_there.join().unwrap();
    release.store(true, Ordering::SeqCst);
    parked.coroutine().unpark();
    foreign.coroutine().unpark();
    parked.join().unwrap();
    foreign.join().unwrap();
    // Only finished coroutines remain: the dump is empty.
    assert!(rt.dump().is_empty());
}
