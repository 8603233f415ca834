//! Test helpers: fixture files and a loopback HTTP server.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flate2::{write::GzEncoder, Compression};

use crate::idx::encode_idx;
use crate::manifest::{DatasetEntry, Manifest};

/// A locator that looks in `dir` only: no environment, cache, system folders or download.
pub fn only(dir: &Path) -> crate::resolve::Locator {
    crate::resolve::Locator {
        data_dir: Some(dir.to_path_buf()),
        allow_download: false,
        base_url_override: None,
        env_dir: None,
        cache_dir: None,
        system_dirs: false,
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A tiny IDX dataset: 2x2 images, 2 classes, `n_train`/`n_test` examples,
/// content varying with `salt`. Returns the uncompressed files by name.
pub fn tiny_idx_files(salt: u8) -> Vec<(String, Vec<u8>)> {
    let (n_train, n_test) = (6usize, 4usize);
    let images = |n: usize| -> Vec<u8> {
        (0..n * 4)
            .map(|i| (i as u8).wrapping_mul(7).wrapping_add(salt))
            .collect()
    };
    let labels = |n: usize| -> Vec<u8> { (0..n).map(|i| (i % 2) as u8).collect() };
    vec![
        (
            "tr-img".into(),
            encode_idx(&[n_train, 2, 2], &images(n_train)),
        ),
        ("tr-lbl".into(), encode_idx(&[n_train], &labels(n_train))),
        (
            "te-img".into(),
            encode_idx(&[n_test, 2, 2], &images(n_test)),
        ),
        ("te-lbl".into(), encode_idx(&[n_test], &labels(n_test))),
    ]
}

/// A manifest entry for [`tiny_idx_files`]; with `files` the digests are
/// pinned to those contents, else left out.
pub fn tiny_entry(files: Option<&[(String, Vec<u8>)]>) -> DatasetEntry {
    let sha = |name: &str| match files {
        Some(fs) => {
            let bytes = &fs.iter().find(|(n, _)| n == name).unwrap().1;
            format!("sha256 = \"{}\"", crate::fsx::sha256_hex(bytes))
        }
        None => String::new(),
    };
    let text = format!(
        r#"
        [[dataset]]
        name = "tiny"
        format = "idx"
        shape = [1, 2, 2]
        classes = ["a", "b"]
        mean = [0.5]
        std = [0.25]
        [[dataset.file]]
        name = "tr-img"
        role = "train-images"
        {}
        [[dataset.file]]
        name = "tr-lbl"
        role = "train-labels"
        {}
        [[dataset.file]]
        name = "te-img"
        role = "test-images"
        {}
        [[dataset.file]]
        name = "te-lbl"
        role = "test-labels"
        {}
        "#,
        sha("tr-img"),
        sha("tr-lbl"),
        sha("te-img"),
        sha("te-lbl")
    );
    Manifest::parse(&text).unwrap().datasets.remove(0)
}

/// Writes `files` gzipped as `<dir>/<name>.gz`.
pub fn write_gz(dir: &Path, files: &[(String, Vec<u8>)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(format!("{name}.gz")), gzip(bytes)).unwrap();
    }
}

/// Every regular file below `dir` (empty if `dir` does not exist).
pub fn files_below(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_below(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A loopback HTTP/1.1 server serving fixed bodies by path. It stops by
/// itself after `max_requests` requests or 20 seconds, whichever is first,
/// and when dropped.
pub struct TestServer {
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start(bodies: HashMap<String, Vec<u8>>, max_requests: usize) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2) = (log.clone(), stop.clone());
        let handle =
            std::thread::spawn(move || serve(listener, bodies, max_requests, &log2, &stop2));
        TestServer {
            base,
            log,
            stop,
            handle: Some(handle),
        }
    }

    /// Paths requested so far.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn serve(
    listener: TcpListener,
    bodies: HashMap<String, Vec<u8>>,
    max_requests: usize,
    log: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut served = 0;
    while served < max_requests && Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                served += 1;
                if let Some(path) = handle(stream, &bodies) {
                    log.lock().unwrap().push(path);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(_) => break,
        }
    }
}

fn handle(mut stream: TcpStream, bodies: &HashMap<String, Vec<u8>>) -> Option<String> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 64 * 1024 {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&req);
    let path = text
        .split_whitespace()
        .nth(1)?
        .trim_start_matches('/')
        .to_string();
    let (status, body) = match bodies.get(&path) {
        Some(b) => ("200 OK", b.as_slice()),
        None => ("404 Not Found", b"not found".as_slice()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
    Some(path)
}
