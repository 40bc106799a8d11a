//! A minimal Redis client: RESP2 over TCP, a pool of idle connections, and a time bound on
//! every operation. Only what the service needs (commands in, replies out); a connection that
//! fails or times out in any way is dropped, and the next operation opens a fresh one, so the
//! service reconnects by itself when Redis comes back.

use std::fmt;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// Largest bulk string or array accepted in a reply (the service's replies are tiny).
const MAX_REPLY_ITEMS: usize = 1 << 20;
/// Longest reply line (type, number or status text) accepted.
const MAX_LINE: usize = 64 * 1024;
/// Deepest nesting of arrays accepted in a reply.
const MAX_DEPTH: usize = 4;
/// Idle connections kept for reuse.
const MAX_IDLE: usize = 64;

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+OK`
    Status(String),
    /// `:42`
    Int(i64),
    /// `$3\r\nabc` or `$-1` (nil)
    Bulk(Option<Vec<u8>>),
    /// `*2 ...` or `*-1` (nil)
    Array(Option<Vec<Value>>),
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Redis could not be reached, the connection broke, or the reply was unreadable.
    Io(String),
    /// The operation did not finish within the bound.
    Timeout,
    /// Redis answered with an error reply (`-ERR ...`).
    Reply(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "redis connection: {e}"),
            Error::Timeout => f.write_str("redis timed out"),
            Error::Reply(e) => write!(f, "redis error: {e}"),
        }
    }
}

fn io(e: impl fmt::Display) -> Error {
    Error::Io(e.to_string())
}

/// One connection, with its own read buffer (plain readiness and `try_read`/`try_write`, so the
/// service needs no more of tokio than the demo backend does, and shares its build).
pub struct Conn {
    tcp: TcpStream,
    buf: Vec<u8>,
    pos: usize,
}

fn closed() -> Error {
    Error::Io("connection closed".into())
}

impl Conn {
    async fn open(addr: &str) -> Result<Self, Error> {
        let tcp = TcpStream::connect(addr).await.map_err(io)?;
        let _ = tcp.set_nodelay(true);
        Ok(Self { tcp, buf: Vec::with_capacity(512), pos: 0 })
    }

    /// Whether this idle connection is out of use: Redis closed it (a restart or a crash closes
    /// every client), or it holds unread bytes. A live idle connection has nothing to read.
    fn is_stale(&self) -> bool {
        let mut byte = [0u8; 1];
        self.pos < self.buf.len()
            || !matches!(self.tcp.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Sends one command and reads its reply. An error reply is `Err(Error::Reply)`; the
    /// connection stays usable after it.
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Value, Error> {
        let mut out = Vec::with_capacity(64 + args.iter().map(|a| a.len() + 16).sum::<usize>());
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        let mut sent = 0;
        while let Some(rest) = out.get(sent..).filter(|r| !r.is_empty()) {
            self.tcp.writable().await.map_err(io)?;
            match self.tcp.try_write(rest) {
                Ok(0) => return Err(closed()),
                Ok(n) => sent = sent.saturating_add(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(io(e)),
            }
        }
        self.read(0).await
    }

    /// Reads more bytes into the buffer (after dropping what was consumed).
    async fn fill(&mut self) -> Result<(), Error> {
        self.buf.drain(..self.pos.min(self.buf.len()));
        self.pos = 0;
        let mut chunk = [0u8; 4096];
        loop {
            self.tcp.readable().await.map_err(io)?;
            match self.tcp.try_read(&mut chunk) {
                Ok(0) => return Err(closed()),
                Ok(n) => {
                    self.buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(io(e)),
            }
        }
    }

    async fn line(&mut self) -> Result<Vec<u8>, Error> {
        loop {
            let pending = self.buf.get(self.pos..).unwrap_or_default();
            if let Some(end) = pending.windows(2).position(|w| w == b"\r\n") {
                let line = pending.get(..end).unwrap_or_default().to_vec();
                self.pos = self.pos.saturating_add(end).saturating_add(2);
                return Ok(line);
            }
            if pending.len() > MAX_LINE {
                return Err(Error::Io("reply line too long".into()));
            }
            self.fill().await?;
        }
    }

    /// The next `n` bytes and the CRLF after them.
    async fn bulk(&mut self, n: usize) -> Result<Vec<u8>, Error> {
        let need = n.saturating_add(2);
        while self.buf.len().saturating_sub(self.pos) < need {
            self.fill().await?;
        }
        let data = self.buf.get(self.pos..self.pos.saturating_add(n)).unwrap_or_default().to_vec();
        self.pos = self.pos.saturating_add(need);
        Ok(data)
    }

    fn read(
        &mut self,
        depth: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, Error>> + Send + '_>> {
        Box::pin(async move {
            let line = self.line().await?;
            let (kind, rest) = line.split_first().ok_or_else(|| Error::Io("empty reply line".into()))?;
            let text = String::from_utf8_lossy(rest).into_owned();
            let number = || text.parse::<i64>().map_err(|_| Error::Io(format!("bad number in reply: {text}")));
            match kind {
                b'+' => Ok(Value::Status(text.clone())),
                b'-' => Err(Error::Reply(text.clone())),
                b':' => Ok(Value::Int(number()?)),
                b'$' => {
                    let n = number()?;
                    if n < 0 {
                        return Ok(Value::Bulk(None));
                    }
                    let n = usize::try_from(n)
                        .ok()
                        .filter(|n| *n <= MAX_REPLY_ITEMS)
                        .ok_or_else(|| io("bulk reply too large"))?;
                    Ok(Value::Bulk(Some(self.bulk(n).await?)))
                }
                b'*' => {
                    let n = number()?;
                    if n < 0 {
                        return Ok(Value::Array(None));
                    }
                    if depth >= MAX_DEPTH {
                        return Err(io("reply nested too deep"));
                    }
                    let n = usize::try_from(n)
                        .ok()
                        .filter(|n| *n <= MAX_REPLY_ITEMS)
                        .ok_or_else(|| io("array reply too large"))?;
                    let mut items = Vec::with_capacity(n.min(64));
                    for _ in 0..n {
                        items.push(self.read(depth.saturating_add(1)).await?);
                    }
                    Ok(Value::Array(Some(items)))
                }
                _ => Err(io("unknown reply type")),
            }
        })
    }
}

/// Connections to one Redis, each operation bounded by `timeout`.
pub struct Pool {
    addr: String,
    timeout: Duration,
    idle: Mutex<Vec<Conn>>,
}

impl Pool {
    /// A pool for `addr` (`host:port`); nothing is opened until used.
    pub fn new(addr: String, timeout: Duration) -> Self {
        Self { addr, timeout, idle: Mutex::new(Vec::new()) }
    }

    /// Runs `op` on a connection (reused, or opened now), within the time bound for the whole
    /// of it, connecting included. The connection is kept for reuse only if `op` succeeded or
    /// failed with an error reply (the stream is then still in step); anything else drops it.
    pub async fn run<T, F>(&self, op: F) -> Result<T, Error>
    where
        F: for<'c> FnOnce(
            &'c mut Conn,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, Error>> + Send + 'c>>,
    {
        let work = async {
            let reused = {
                let mut idle = self.idle.lock().await;
                // Closed by Redis while idle: dropped, so the first call after Redis comes
                // back does not fail on them.
                idle.retain(|c| !c.is_stale());
                idle.pop()
            };
            let mut conn = match reused {
                Some(c) => c,
                None => Conn::open(&self.addr).await?,
            };
            let result = op(&mut conn).await;
            let mut idle = self.idle.lock().await;
            if matches!(result, Ok(_) | Err(Error::Reply(_))) {
                if idle.len() < MAX_IDLE {
                    idle.push(conn);
                }
            } else {
                // A broken connection usually means Redis went away: the idle ones are broken too.
                idle.clear();
            }
            result
        };
        tokio::time::timeout(self.timeout, work).await.unwrap_or(Err(Error::Timeout))
    }
}
