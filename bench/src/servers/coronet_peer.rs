//! coronet: a coroutine per connection over `coronet::net`, the code a user would write.

use std::io;
use std::time::Duration;

use coronet::net::TcpListener;
use coronet::runtime::Builder;

use super::{echo, http_conn};

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
