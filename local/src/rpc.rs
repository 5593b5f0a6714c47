//! A minimal blocking HTTP client for CometBFT's JSON-RPC `GET` endpoints on loopback.
//!
//! Requests are HTTP/1.0 with `Connection: close`, so the response body runs to EOF; a
//! chunked body is decoded anyway for robustness.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

/// Upper bound on a response body.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// `GET http://127.0.0.1:<port><path>` and return the JSON-RPC `result`.
pub fn get_result(port: u16, path: &str, timeout: Duration) -> Result<Value> {
    let body = http_get(port, path, timeout)?;
    let json: Value = serde_json::from_slice(&body)
        .with_context(|| format!("GET {path} on port {port}: response is not JSON"))?;
    if let Some(err) = json.get("error").filter(|e| !e.is_null()) {
        bail!("GET {path} on port {port}: JSON-RPC error {err}");
    }
    json.get("result")
        .cloned()
        .ok_or_else(|| anyhow!("GET {path} on port {port}: no \"result\" in response"))
}

/// True if something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_accepts(port: u16, timeout: Duration) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), timeout).is_ok()
}

/// Raw `GET` returning the body of a `200` response.
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Result<Vec<u8>> {
    let (status, body) = http_request(port, "GET", path, &[], None, timeout)?;
    if status != 200 {
        bail!(
            "GET {path} on port {port}: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(body)
}

/// One HTTP/1.0 request to 127.0.0.1:`port`; returns the status and the body, whatever the
/// status.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>)> {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream
        .set_write_timeout(Some(timeout))
        .context("set_write_timeout")?;
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    if let Some(body) = body {
        bytes.extend_from_slice(body);
    }
    stream
        .write_all(&bytes)
        .with_context(|| format!("sending {method} {path} to {addr}"))?;
    let mut response = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("{method} {path} on {addr}: no complete response within {timeout:?}");
        }
        stream
            .set_read_timeout(Some(left))
            .context("set_read_timeout")?;
        let n = stream
            .read(&mut buf)
            .with_context(|| format!("reading response to {method} {path} from {addr}"))?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
        if response.len() > MAX_RESPONSE_BYTES {
            bail!("{method} {path} on {addr}: response larger than {MAX_RESPONSE_BYTES} bytes");
        }
    }
    let (status, chunked, body) = parse_response(&response)
        .with_context(|| format!("{method} {path} on {addr}: malformed HTTP response"))?;
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

/// Splits a raw HTTP response into (status code, chunked?, body bytes).
fn parse_response(raw: &[u8]) -> Result<(u16, bool, &[u8])> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split]).context("headers are not UTF-8")?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let proto = parts.next().unwrap_or_default();
    if !proto.starts_with("HTTP/") {
        bail!("bad status line {status_line:?}");
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        })
    });
    Ok((status, chunked, body))
}

/// Decodes a `Transfer-Encoding: chunked` body.
fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("truncated chunk size line"))?;
        let size_text = std::str::from_utf8(&data[..line_end]).context("chunk size not UTF-8")?;
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .with_context(|| format!("bad chunk size {size_hex:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let raw = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}";
        let (status, chunked, body) = parse_response(raw).unwrap();
        assert_eq!((status, chunked, body), (200, false, &b"{\"a\":1}"[..]));

        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n0\r\n\r\n";
        let (status, chunked, body) = parse_response(raw).unwrap();
        assert_eq!((status, chunked), (200, true));
        assert_eq!(dechunk(body).unwrap(), b"{\"a\":1}");

        assert!(parse_response(b"garbage").is_err());
        assert!(parse_response(b"FOO 200\r\n\r\n").is_err());
        assert!(dechunk(b"5\r\nab").is_err());
    }

    fn serve_once(response: &'static [u8]) -> u16 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            s.write_all(response).unwrap();
        });
        port
    }

    #[test]
    fn get_result_extracts_result_and_errors() {
        let port = serve_once(
            b"HTTP/1.0 200 OK\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":-1,\"result\":{\"x\":\"5\"}}",
        );
        let v = get_result(port, "/status", Duration::from_secs(5)).unwrap();
        assert_eq!(v["x"], "5");

        let port = serve_once(
            b"HTTP/1.0 500 Internal\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":-1,\"error\":{\"code\":-32603}}",
        );
        let err = format!(
            "{:#}",
            get_result(port, "/block?height=9", Duration::from_secs(5)).unwrap_err()
        );
        assert!(err.contains("500"), "{err}");
    }
}
