//! std threads: a thread per connection with blocking std sockets. The worker count does
//! not apply (one thread per connection); the split layout pins all of them to one core.

use std::io;
use std::net::TcpListener;
use std::time::Duration;

use super::{echo, http_conn};

pub fn serve(addr: &str, http: bool) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let spawned = std::thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn(move || {
                        let _ = if http {
                            http_conn(stream)
                        } else {
                            echo(stream)
                        };
                    });
                if spawned.is_err() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}
