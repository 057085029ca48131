//! tokio: the multi-thread runtime, a task per connection, the same hand loops.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{HttpConn, BUF};

pub fn serve(addr: &str, workers: usize, http: bool) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    let addr = addr.to_string();
    rt.block_on(async move {
        let listener = TcpListener::bind(addr.as_str()).await?;
        // The accept loop runs on a worker like the connections, not on the main thread.
        let acceptor = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(async move {
                            let _ = if http {
                                http_conn(stream).await
                            } else {
                                echo(stream).await
                            };
                        });
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            }
        });
        acceptor.await.map_err(io::Error::other)
    })
}

async fn echo(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; BUF];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}

async fn http_conn(mut stream: TcpStream) -> io::Result<()> {
    let mut conn = HttpConn::new();
    loop {
        let Some(spare) = conn.spare() else {
            return Ok(());
        };
        let n = stream.read(spare).await?;
        if n == 0 {
            return Ok(());
        }
        let out = conn.advance(n);
        if !out.is_empty() {
            stream.write_all(out).await?;
        }
    }
}
