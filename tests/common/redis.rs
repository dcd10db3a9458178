//! A RESP client over a std TcpStream, for the tests that run mini_redis: included with
//! `#[path]` by the test files that need it, so the others do not compile it. The includer
//! provides `crate::resp`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

// The request encoder: each includer has mini_redis's resp.rs as `crate::resp` (its own
// module, or the example's), which clippy would not let this file load a second time.
use crate::resp;

/// Reads one whole reply and returns its bytes as text.
pub fn read_reply(r: &mut impl BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.ends_with("\r\n"), "cut reply: {line:?}");
    let n: i64 = line[1..line.len() - 2].parse().unwrap_or(0);
    match line.as_bytes()[0] {
        b'$' if n >= 0 => {
            let mut data = vec![0; n as usize + 2];
            r.read_exact(&mut data).unwrap();
            line + &String::from_utf8_lossy(&data)
        }
        b'*' => (0..n).fold(line, |acc, _| acc + &read_reply(r)),
        _ => line,
    }
}

/// A connection that sends requests and reads their replies.
pub struct Client {
    pub w: TcpStream,
    pub r: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let w = TcpStream::connect(addr).unwrap();
        w.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client { r: BufReader::new(w.try_clone().unwrap()), w }
    }

    pub fn ask(&mut self, args: &[&str]) -> String {
        self.w.write_all(&resp::request(args)).unwrap();
        read_reply(&mut self.r)
    }

    /// Sends raw bytes and reads `replies` replies.
    pub fn raw(&mut self, bytes: &[u8], replies: usize) -> String {
        self.w.write_all(bytes).unwrap();
        (0..replies).map(|_| read_reply(&mut self.r)).collect()
    }

    /// Reads until the server closes the connection. A reset counts as the end too: a server
    /// that closes with input unread (ours after a protocol error, as Redis) resets.
    pub fn rest(&mut self) -> String {
        let mut rest = Vec::new();
        let mut chunk = [0; 4096];
        loop {
            match self.r.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => rest.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("reading until the close: {e}"),
            }
        }
        String::from_utf8_lossy(&rest).into_owned()
    }
}
