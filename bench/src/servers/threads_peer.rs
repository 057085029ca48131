//! std threads: a thread per connection with blocking std sockets. The worker count does
//! not apply (one thread per connection); the split layout pins all of them to one core.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use super::{HttpConn, BUF};

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

fn echo(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; BUF];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

fn http_conn(mut stream: TcpStream) -> io::Result<()> {
    let mut conn = HttpConn::new();
    loop {
        let Some(spare) = conn.spare() else {
            return Ok(());
        };
        let n = stream.read(spare)?;
        if n == 0 {
            return Ok(());
        }
        let out = conn.advance(n);
        if !out.is_empty() {
            stream.write_all(out)?;
        }
    }
}
