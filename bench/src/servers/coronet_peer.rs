//! coronet: a coroutine per connection over `coronet::net`, the code a user would write.

use std::io::{self, Read, Write};
use std::time::Duration;

use coronet::net::{TcpListener, TcpStream};
use coronet::runtime::Builder;

use super::{HttpConn, BUF};

pub fn serve(addr: &str, workers: usize, http: bool) -> io::Result<()> {
    let rt = Builder::new().workers(workers).build()?;
    let addr = addr.to_string();
    rt.block_on(move || {
        let listener = TcpListener::bind(addr.as_str())?;
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    coronet::spawn(move || {
                        let _ = if http {
                            http_conn(stream)
                        } else {
                            echo(stream)
                        };
                    });
                }
                // EMFILE and friends: back off instead of spinning.
                Err(_) => coronet::sleep(Duration::from_millis(1)),
            }
        }
    })
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
