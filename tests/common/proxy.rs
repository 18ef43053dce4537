//! A fault-injecting HTTP proxy between the daemon and Elasticsearch (STYLE.md §6).
//!
//! [`EsProxy::start`] listens on a free port of 127.0.0.1 and forwards HTTP/1.1 requests to
//! an upstream `http://` server, keep-alive included (bodies framed by `Content-Length` or
//! chunked). [`EsProxy::set`] switches the [`Fault`] at run time; [`EsProxy::hits`] counts
//! what each fault was applied to, so a test can assert that the fault was actually hit.
//!
//! The HTTP-level faults (`Status`, `Stall`, `Cut`, `MaxBody`, `Delay`) apply to `_bulk`
//! requests only: other requests (`GET /`, index management) pass through, so a fault hits
//! the data path and nothing else. The connection-level faults (`Down`, `Refuse`) apply to
//! everything and also close the connections already open (a pooled keep-alive connection
//! would dodge them).
//!
//! The proxy runs on a thread and runtime of its own: it keeps serving while a test blocks its
//! own runtime, and it survives each `#[tokio::test]` runtime. Dropping the proxy stops it and
//! closes every connection.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{oneshot, watch};

/// What the proxy does with the traffic it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Forward everything (counted per request forwarded whole).
    PassThrough,
    /// Stop listening: connecting fails with `ECONNREFUSED`, open connections are closed.
    /// Nothing reaches the proxy, so nothing is counted: check the daemon's log instead.
    Down,
    /// Accept, then close at once with a reset (counted per connection, and per request that
    /// arrives on a connection opened before the switch).
    Refuse,
    /// Answer `_bulk` requests with this whole-request status and an Elasticsearch-style JSON
    /// error body, without forwarding them (counted per request).
    Status(u16),
    /// Read `_bulk` requests and never answer; the connection stays open until the client
    /// gives up (counted per request).
    Stall,
    /// Forward `_bulk` requests (Elasticsearch applies them), relay the first half of the
    /// response bytes, then close (counted per request).
    Cut,
    /// Forward `_bulk` requests whose body has at most this many bytes; answer larger ones
    /// with HTTP 413, as Elasticsearch does above `http.max_content_length`, without
    /// forwarding them (counted per refused request).
    MaxBody(usize),
    /// Hold each `_bulk` request this long, then forward it: a sink far away, whose round
    /// trip does not grow with the requests in flight (counted per request). A request
    /// held when the fault switches to `Status` gets that answer instead, as requests queued
    /// at a sink that starts to refuse.
    Delay(Duration),
}

struct Shared {
    upstream: SocketAddr,
    fault: watch::Sender<Fault>,
    hits: Mutex<HashMap<Fault, u64>>,
    bulk_passed: AtomicU64,
}

impl Shared {
    fn hit(&self, fault: Fault) {
        *self.hits.lock().unwrap().entry(fault).or_default() += 1;
    }
}

/// The proxy; see the module docs.
pub struct EsProxy {
    url: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EsProxy {
    /// Starts a proxy in front of `upstream` (`http://host:port`), passing everything through.
    ///
    /// # Panics
    /// If `upstream` is not a plain `http://` URL with a host and port.
    pub fn start(upstream: &str) -> EsProxy {
        let authority = upstream
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("the fault proxy speaks plain http only, not {upstream}"))
            .trim_end_matches('/');
        let upstream = authority
            .to_socket_addrs()
            .unwrap_or_else(|e| panic!("resolving {authority}: {e}"))
            .next()
            .unwrap_or_else(|| panic!("{authority} resolves to no address"));
        // Bind here, so the port is known (and taken) before `start` returns.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (fault, fault_rx) = watch::channel(Fault::PassThrough);
        let shared = Arc::new(Shared {
            upstream,
            fault,
            hits: Mutex::new(HashMap::new()),
            bulk_passed: AtomicU64::new(0),
        });
        let (stop, stop_rx) = oneshot::channel();
        let task_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("es-proxy-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener).unwrap();
                    tokio::select! {
                        _ = accept_loop(task_shared, addr, listener, fault_rx) => {}
                        _ = stop_rx => {}
                    }
                });
                // Dropping the runtime drops every connection task, closing their sockets.
            })
            .unwrap();
        EsProxy {
            url: format!("http://{addr}"),
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The proxy's URL, for the daemon's `[elasticsearch] url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Switches to `fault`; new requests see it at once.
    pub fn set(&self, fault: Fault) {
        self.shared.fault.send_replace(fault);
    }

    /// The fault in force.
    pub fn fault(&self) -> Fault {
        *self.shared.fault.borrow()
    }

    /// How many requests (connections for `Refuse`) `fault` was applied to so far.
    pub fn hits(&self, fault: Fault) -> u64 {
        self.shared
            .hits
            .lock()
            .unwrap()
            .get(&fault)
            .copied()
            .unwrap_or(0)
    }

    /// How many `_bulk` requests were forwarded and had a whole answer to send back.
    pub fn bulk_passed(&self) -> u64 {
        self.shared.bulk_passed.load(Ordering::Relaxed)
    }

    /// Every count, for messages.
    pub fn stats(&self) -> String {
        let hits = self.shared.hits.lock().unwrap();
        let mut parts: Vec<String> = hits.iter().map(|(f, n)| format!("{f:?}={n}")).collect();
        parts.sort();
        format!(
            "{} bulk_passed={}",
            parts.join(" "),
            self.shared.bulk_passed.load(Ordering::Relaxed)
        )
    }
}

impl Drop for EsProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}

/// Accepts connections while the fault is not `Down`; closes the listener while it is, and
/// listens again on the same address afterwards.
async fn accept_loop(
    shared: Arc<Shared>,
    addr: SocketAddr,
    listener: TcpListener,
    mut fault_rx: watch::Receiver<Fault>,
) {
    let mut listener = Some(listener);
    loop {
        if *fault_rx.borrow_and_update() == Fault::Down {
            listener = None;
            if fault_rx.wait_for(|f| *f != Fault::Down).await.is_err() {
                return;
            }
            continue;
        }
        let current = match listener.take() {
            Some(l) => l,
            None => rebind(addr).await,
        };
        loop {
            tokio::select! {
                accepted = current.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    stream.set_nodelay(true).ok();
                    if *fault_rx.borrow() == Fault::Refuse {
                        shared.hit(Fault::Refuse);
                        reset(stream);
                        continue;
                    }
                    tokio::spawn(connection(Arc::clone(&shared), stream, fault_rx.clone()));
                }
                changed = fault_rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if *fault_rx.borrow() == Fault::Down {
                        break; // drops `current`: the port refuses connections
                    }
                }
            }
        }
    }
}

/// Listens on `addr` again (SO_REUSEADDR, retried while the port is briefly busy).
async fn rebind(addr: SocketAddr) -> TcpListener {
    let mut last = None;
    for _ in 0..100 {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        match socket.bind(addr).and_then(|()| socket.listen(1024)) {
            Ok(listener) => return listener,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the fault proxy cannot listen on {addr} again: {last:?}");
}

/// Closes with a TCP reset, as a server that refuses the connection.
fn reset(stream: TcpStream) {
    stream.set_zero_linger().ok();
    drop(stream);
}

/// Serves one client connection until it closes, or until the fault becomes `Down` or
/// `Refuse` (then the connection is reset).
async fn connection(shared: Arc<Shared>, client: TcpStream, fault_rx: watch::Receiver<Fault>) {
    let mut severed = fault_rx.clone();
    let client = Arc::new(client);
    let served = serve(&shared, Arc::clone(&client), fault_rx);
    tokio::select! {
        _ = served => {}
        _ = severed.wait_for(|f| matches!(f, Fault::Down | Fault::Refuse)) => {}
    }
    if let Ok(client) = Arc::try_unwrap(client) {
        reset(client);
    }
}

async fn serve(shared: &Shared, client: Arc<TcpStream>, fault_rx: watch::Receiver<Fault>) {
    let mut from_client = Vec::new();
    let mut upstream: Option<(TcpStream, Vec<u8>)> = None;
    loop {
        let request = match read_message(&client, &mut from_client, None).await {
            Ok(Some(request)) => request,
            _ => return, // closed by the client, or not HTTP we understand
        };
        let fault = *fault_rx.borrow();
        let bulk = request.is_bulk();
        match fault {
            Fault::Down | Fault::Refuse => {
                shared.hit(fault);
                return;
            }
            Fault::Status(status) if bulk => {
                shared.hit(fault);
                if write_all(&client, &status_response(status)).await.is_err() {
                    return;
                }
                continue;
            }
            Fault::MaxBody(max) if bulk && request.body_len > max => {
                shared.hit(fault);
                if write_all(&client, &status_response(413)).await.is_err() {
                    return;
                }
                continue;
            }
            Fault::Stall if bulk => {
                shared.hit(fault);
                // Never answer; keep reading (and discarding) until the client gives up.
                let mut sink = [0u8; 16 * 1024];
                while let Ok(n) = read_some(&client, &mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
                return;
            }
            Fault::Delay(pause) if bulk => {
                tokio::time::sleep(pause).await;
                let now = *fault_rx.borrow();
                if let Fault::Status(status) = now {
                    shared.hit(now);
                    if write_all(&client, &status_response(status)).await.is_err() {
                        return;
                    }
                    continue;
                }
            }
            _ => {}
        }
        let Some(response) = forward(shared, &mut upstream, &request).await else {
            return; // upstream failed: the client sees the connection close
        };
        if fault == Fault::Cut && bulk {
            shared.hit(fault);
            let half = response.raw.len() / 2;
            write_all(&client, &response.raw[..half]).await.ok();
            // A clean close (FIN), so the client reads exactly the half, then end of stream.
            shutdown_write(&client);
            return;
        }
        // Counted before the answer goes out: a client that reads the counters right after
        // its response must see this request.
        shared.hit(match fault {
            Fault::Delay(_) if bulk => fault,
            _ => Fault::PassThrough,
        });
        if bulk {
            shared.bulk_passed.fetch_add(1, Ordering::Relaxed);
        }
        if write_all(&client, &response.raw).await.is_err() {
            return;
        }
        if request.close || response.close {
            shutdown_write(&client);
            return;
        }
    }
}

/// Sends `request` upstream on the connection kept for this client (a new one when there is
/// none, or when the kept one turns out closed) and reads the response.
async fn forward(
    shared: &Shared,
    upstream: &mut Option<(TcpStream, Vec<u8>)>,
    request: &Message,
) -> Option<Message> {
    for _attempt in 0..2 {
        let reused = upstream.is_some();
        if upstream.is_none() {
            let stream = TcpStream::connect(shared.upstream).await.ok()?;
            stream.set_nodelay(true).ok();
            *upstream = Some((stream, Vec::new()));
        }
        let (stream, buf) = upstream.as_mut()?;
        let sent = stream.write_all(&request.raw).await;
        let head = request.method == "HEAD";
        let answer = match sent {
            Ok(()) => read_message(&*stream, buf, Some(head)).await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(Some(response)) => {
                if response.close {
                    *upstream = None;
                }
                return Some(response);
            }
            // A kept connection the server closed meanwhile: once more on a new one.
            Ok(None) | Err(_) if reused => *upstream = None,
            _ => return None,
        }
    }
    None
}

/// One HTTP message, exactly as read.
struct Message {
    raw: Vec<u8>,
    /// Request method (empty for responses).
    method: String,
    /// Request target (empty for responses).
    target: String,
    /// The connection ends after this message.
    close: bool,
    /// Bytes after the head (chunk framing included).
    body_len: usize,
}

impl Message {
    fn is_bulk(&self) -> bool {
        let path = self.target.split('?').next().unwrap_or_default();
        path.ends_with("/_bulk")
    }
}

enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilEof,
}

/// Reads one message from `stream` (`buf` holds bytes read ahead). `response_to` is `None`
/// for a request, `Some(head_request)` for a response. `Ok(None)` when the stream ends
/// before a message starts.
async fn read_message(
    stream: &TcpStream,
    buf: &mut Vec<u8>,
    response_to: Option<bool>,
) -> io::Result<Option<Message>> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n", 0) {
            break i + 4;
        }
        if !read_more(stream, buf).await? {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut words = first.split(' ');
    let (method, target, version, status) = match response_to {
        None => {
            let method = words.next().unwrap_or_default().to_string();
            let target = words.next().unwrap_or_default().to_string();
            let version = words.next().unwrap_or_default().to_string();
            (method, target, version, 0)
        }
        Some(_) => {
            let version = words.next().unwrap_or_default().to_string();
            let status: u16 = words.next().unwrap_or_default().parse().unwrap_or(0);
            (String::new(), String::new(), version, status)
        }
    };
    let mut length = None;
    let mut chunked = false;
    let mut close = version == "HTTP/1.0";
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let framing = match response_to {
        Some(true) => Framing::Empty,
        Some(false) if status < 200 || status == 204 || status == 304 => Framing::Empty,
        _ if chunked => Framing::Chunked,
        _ => match (length, response_to) {
            (Some(n), _) => Framing::Length(n),
            (None, None) => Framing::Empty,
            (None, Some(_)) => Framing::UntilEof,
        },
    };
    let end = match framing {
        Framing::Empty => head_end,
        Framing::Length(n) => {
            fill(stream, buf, head_end + n).await?;
            head_end + n
        }
        Framing::Chunked => {
            let mut at = head_end;
            loop {
                let eol = line_end(stream, buf, at).await?;
                let line = String::from_utf8_lossy(&buf[at..eol]).into_owned();
                let size_text = line.split(';').next().unwrap_or_default().trim();
                let size = usize::from_str_radix(size_text, 16)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "chunk size"))?;
                at = eol + 2;
                if size == 0 {
                    // Trailers, up to an empty line.
                    loop {
                        let end = line_end(stream, buf, at).await?;
                        let empty = end == at;
                        at = end + 2;
                        if empty {
                            break;
                        }
                    }
                    break at;
                }
                fill(stream, buf, at + size + 2).await?;
                at += size + 2;
            }
        }
        Framing::UntilEof => {
            while read_more(stream, buf).await? {}
            close = true;
            buf.len()
        }
    };
    let raw: Vec<u8> = buf.drain(..end).collect();
    Ok(Some(Message {
        raw,
        method,
        target,
        close,
        body_len: end - head_end,
    }))
}

/// The index of the `\r\n` ending the line that starts at `from`, reading more as needed.
async fn line_end(stream: &TcpStream, buf: &mut Vec<u8>, from: usize) -> io::Result<usize> {
    loop {
        if let Some(i) = find(buf, b"\r\n", from) {
            return Ok(i);
        }
        if !read_more(stream, buf).await? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// Reads until `buf` holds at least `len` bytes.
async fn fill(stream: &TcpStream, buf: &mut Vec<u8>, len: usize) -> io::Result<()> {
    while buf.len() < len {
        if !read_more(stream, buf).await? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// Appends what the stream has; false at its end.
async fn read_more(stream: &TcpStream, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut chunk = vec![0u8; 64 * 1024];
    let n = read_some(stream, &mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

// The socket is shared (`&TcpStream`) between the serving future and the code that resets it,
// so reads and writes go through readiness + try_* rather than `&mut` I/O.
async fn read_some(stream: &TcpStream, out: &mut [u8]) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(out) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

async fn write_all(stream: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        stream.writable().await?;
        match stream.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn shutdown_write(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain shutdown(2) on a socket we own; no memory is involved.
    unsafe { libc::shutdown(stream.as_raw_fd(), libc::SHUT_WR) };
}

/// A whole-request error answer as Elasticsearch gives it.
fn status_response(status: u16) -> Vec<u8> {
    let (reason, kind) = match status {
        429 => ("Too Many Requests", "es_rejected_execution_exception"),
        503 => ("Service Unavailable", "cluster_block_exception"),
        502 => ("Bad Gateway", "proxy_exception"),
        500 => ("Internal Server Error", "exception"),
        413 => ("Request Entity Too Large", "content_too_long_exception"),
        _ => ("Error", "exception"),
    };
    let message = format!("{reason} (injected by the test proxy)");
    let body = serde_json::json!({
        "error": {
            "root_cause": [{"type": kind, "reason": message}],
            "type": kind,
            "reason": message,
        },
        "status": status,
    })
    .to_string();
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
