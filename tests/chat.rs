//! The chat example, served in-process and driven by real TCP clients on plain threads.

#[allow(dead_code)]
#[path = "../examples/chat.rs"]
mod chat;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A guard against a hang, not a timing assertion: a broken server fails the test instead.
const HANG_GUARD: Duration = Duration::from_secs(30);

struct Client {
    name: String,
    stream: TcpStream,
    lines: BufReader<TcpStream>,
}

impl Client {
    /// Connects and waits for the welcome line, which the hub sends once it has added the
    /// client to the room.
    fn join(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
        let mut lines = BufReader::new(stream.try_clone().unwrap());
        let welcome = read_line(&mut lines);
        let name = welcome
            .strip_prefix("* welcome, you are ")
            .unwrap_or_else(|| panic!("unexpected first line: {welcome:?}"))
            .to_owned();
        Client {
            name,
            stream,
            lines,
        }
    }

    fn say(&mut self, text: &str) {
        writeln!(self.stream, "{text}").unwrap();
    }

    /// The next `n` chat lines, skipping notices (`* ...`).
    fn chat_lines(&mut self, n: usize) -> BTreeSet<String> {
        let mut got = BTreeSet::new();
        while got.len() < n {
            let line = read_line(&mut self.lines);
            if !line.starts_with('*') {
                assert!(got.insert(line.clone()), "line delivered twice: {line}");
            }
        }
        got
    }

    /// Reads until a notice equal to `notice` arrives.
    fn wait_notice(&mut self, notice: &str) {
        loop {
            if read_line(&mut self.lines) == notice {
                return;
            }
        }
    }
}

fn read_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    let n = reader.read_line(&mut line).unwrap();
    assert!(n > 0, "the server closed the connection");
    line.trim_end().to_owned()
}

/// Starts `chat::serve` on a 2-worker runtime; returns the runtime, the address, a handle to
/// close the listener and the server's join handle.
fn start() -> (
    coronet::Runtime,
    SocketAddr,
    coronet::net::TcpListener,
    coronet::JoinHandle<std::io::Result<()>>,
) {
    let runtime = coronet::runtime::Builder::new().workers(2).build().unwrap();
    let listener = coronet::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let closer = listener.try_clone().unwrap();
    let server = runtime.spawn(move || chat::serve(listener));
    (runtime, addr, closer, server)
}

#[test]
fn every_client_receives_the_other_clients_lines() {
    const CLIENTS: usize = 5;
    let (_runtime, addr, closer, server) = start();
    let mut clients: Vec<Client> = (0..CLIENTS).map(|_| Client::join(addr)).collect();
    // Every client is in the room (it got its welcome): now everyone talks.
    for client in &mut clients {
        let text = format!("hello from {}", client.name);
        client.say(&text);
    }
    let names: Vec<String> = clients.iter().map(|c| c.name.clone()).collect();
    for client in &mut clients {
        let expected: BTreeSet<String> = names
            .iter()
            .filter(|name| **name != client.name)
            .map(|name| format!("{name}: hello from {name}"))
            .collect();
        assert_eq!(
            client.chat_lines(CLIENTS - 1),
            expected,
            "at {}",
            client.name
        );
    }
    drop(clients);
    closer.close().unwrap();
    server.join().unwrap().unwrap();
}

#[test]
fn a_client_that_leaves_is_announced_and_the_room_goes_on() {
    let (_runtime, addr, closer, server) = start();
    let mut alice = Client::join(addr);
    let bob = Client::join(addr);
    let mut carol = Client::join(addr);
    let bob_name = bob.name.clone();
    drop(bob);
    let left = format!("* {bob_name} left");
    alice.wait_notice(&left);
    carol.wait_notice(&left);
    alice.say("still here");
    let expected = BTreeSet::from([format!("{}: still here", alice.name)]);
    assert_eq!(carol.chat_lines(1), expected);
    drop((alice, carol));
    closer.close().unwrap();
    server.join().unwrap().unwrap();
}

#[test]
fn a_taken_port_is_a_clean_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let args = [
        "--addr".to_owned(),
        addr.clone(),
        "--workers".to_owned(),
        "1".to_owned(),
    ];
    let error = chat::run(args.into_iter()).unwrap_err();
    assert!(
        error.contains(&format!("cannot listen on {addr}")),
        "{error}"
    );
}

#[test]
fn bad_arguments_are_reported() {
    let error = chat::run(["--workers".to_owned(), "zero".to_owned()].into_iter()).unwrap_err();
    assert!(error.contains("--workers"), "{error}");
    let error = chat::run(["--bogus".to_owned()].into_iter()).unwrap_err();
    assert!(error.contains("unknown argument"), "{error}");
}
