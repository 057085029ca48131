//! may: stackful coroutines, a coroutine per connection for echo, may_minihttp for HTTP.

use std::io;

use may::net::TcpListener;
use may_minihttp::{HttpServer, HttpService, Request, Response};

use super::echo;

/// Sets may's worker count (before its scheduler starts) and leaves thread placement to the
/// kernel as for every other peer (may pins its workers to cores by default).
pub fn configure(workers: usize) {
    may::config().set_workers(workers);
    may::config().set_worker_pin(false);
}

pub fn serve(addr: &str, workers: usize, http: bool) -> io::Result<()> {
    configure(workers);
    if http {
        let server = HttpServer(Hello).start(addr)?;
        return server
            .join()
            .map_err(|_| io::Error::other("may_minihttp server panicked"));
    }
    let listener = TcpListener::bind(addr)?;
    // SAFETY: may requires that a coroutine not rely on thread-locals across its switches;
    // the accept loop touches only may's sockets and its own stack.
    let acceptor = unsafe { may::coroutine::spawn(move || accept_loop(listener)) };
    acceptor
        .join()
        .map_err(|_| io::Error::other("may accept loop panicked"))
}

fn accept_loop(listener: TcpListener) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else {
            may::coroutine::sleep(std::time::Duration::from_millis(1));
            continue;
        };
        let _ = stream.set_nodelay(true);
        // SAFETY: as above; `echo` uses only its socket and a stack buffer.
        unsafe {
            may::coroutine::spawn(move || echo(stream));
        }
    }
}

#[derive(Clone)]
struct Hello;

impl HttpService for Hello {
    fn call(&mut self, _req: Request, rsp: &mut Response) -> io::Result<()> {
        rsp.header("Content-Type: text/plain");
        rsp.body("Hello, World!");
        Ok(())
    }
}
