//! Pieces the harness's client programs share (`latency`, `newconn`): a CONNECT tunnel and one
//! HTTP/1.1 response read off a stream.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;

pub type BoxError = Box<dyn std::error::Error>;

/// A TCP connection to `proxy` tunnelled by CONNECT to `host:443`, sending `token` as a Bearer
/// `Proxy-Authorization` unless it is `-`. The answer's head is read a byte at a time so nothing
/// of the tunnel is consumed.
pub fn tunnel(proxy: &str, host: &str, token: &str) -> Result<TcpStream, BoxError> {
    let mut s = TcpStream::connect(proxy)?;
    let auth = if token == "-" { String::new() } else { format!("Proxy-Authorization: Bearer {token}\r\n") };
    write!(s, "CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n{auth}\r\n")?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 200") && !head.starts_with(b"HTTP/1.0 200") {
        return Err(format!("CONNECT refused: {}", String::from_utf8_lossy(&head)).into());
    }
    Ok(s)
}

/// Reads one response (head, then a `Content-Length` body) and returns its status line.
pub fn read_response(reader: &mut impl BufRead) -> Result<String, BoxError> {
    let (mut status, mut length) = (String::new(), 0usize);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err("connection closed".into());
        }
        if status.is_empty() {
            status = line.clone();
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse()?;
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    Ok(status)
}
