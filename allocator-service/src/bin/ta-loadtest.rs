//! Bounded load test on loopback: the service in-process with file discovery of many targets,
//! many clients polling `/jobs/<job>/targets?collector_id=<id>` over keep-alive connections (as
//! collectors' HTTP SD does) while a writer churns the file_sd file. Prints p50/p99 latency and
//! requests/s; exits 1 on any error (a non-200 answer, a body that is not a JSON array, a
//! dropped connection). Clients and service share the machine, so the numbers are a floor.
//!
//! `cargo run --release -p allocator-service --bin ta-loadtest -- [--targets N] [--collectors N]
//!  [--clients N] [--seconds S] [--gzip]`
//!
//! With `--address HOST:PORT [--job NAME]` it starts nothing and writes no file: it polls that
//! allocator (ours or the Go one) for every collector its `/jobs/<job>/targets` lists.

use std::io::Read as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const USAGE: &str =
    "usage: ta-loadtest [--targets N] [--collectors N] [--clients N] [--seconds S] \
                     [--gzip] [--address HOST:PORT [--job NAME]]";

struct Args {
    targets: usize,
    collectors: usize,
    clients: usize,
    seconds: u64,
    /// Ask for gzip (`Accept-Encoding: gzip`, as Go's HTTP client does by itself).
    gzip: bool,
    /// Poll this allocator instead of starting one (no file is written then).
    address: Option<String>,
    /// The job to poll with `--address` (default: the first `/jobs` lists).
    job: Option<String>,
}

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

fn args() -> Args {
    let mut a = Args {
        targets: 20_000,
        collectors: 10,
        clients: 64,
        seconds: 10,
        gzip: false,
        address: None,
        job: None,
    };
    let mut v = std::env::args().skip(1);
    while let Some(flag) = v.next() {
        if flag == "--gzip" {
            a.gzip = true;
            continue;
        }
        let value = v.next().unwrap_or_else(|| usage());
        let n = || value.parse::<usize>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--targets" => a.targets = n(),
            "--collectors" => a.collectors = n(),
            "--clients" => a.clients = n(),
            "--seconds" => a.seconds = n() as u64,
            "--address" => a.address = Some(value),
            "--job" => a.job = Some(value),
            other => {
                eprintln!("ta-loadtest: unknown argument {other}");
                usage()
            }
        }
    }
    a
}

fn write_targets(path: &std::path::Path, n: usize, generation: usize) {
    // 1% of the targets change address every generation.
    let groups: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let g = if i % 100 == generation % 100 { generation } else { 0 };
            serde_json::json!({
                "targets": [format!("10.{}.{}.{}:{}", i >> 16 & 255, i >> 8 & 255, i & 255, 8080 + g % 1000)],
                "labels": {"__meta_kubernetes_pod_name": format!("pod-{i}"), "__meta_kubernetes_namespace": "load"}
            })
        })
        .collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&groups).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// One answer: status, body as sent, and whether it was gzip.
struct Got {
    status: u16,
    body: Vec<u8>,
    gzip: bool,
}

impl Got {
    /// The body with its content encoding undone.
    fn decoded(&self) -> std::io::Result<Vec<u8>> {
        if !self.gzip {
            return Ok(self.body.clone());
        }
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&self.body[..]).read_to_end(&mut out)?;
        Ok(out)
    }
}

/// One keep-alive GET (a `Content-Length` or chunked answer, as the Go allocator also sends).
async fn get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    path: &str,
    gzip: bool,
) -> std::io::Result<Got> {
    let accept = if gzip {
        "Accept-Encoding: gzip\r\n"
    } else {
        ""
    };
    s.get_mut()
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: loadtest\r\n{accept}\r\n").as_bytes())
        .await?;
    let mut line = String::new();
    s.read_line(&mut line).await?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    let (mut length, mut chunked, mut gzipped) = (None, false, false);
    loop {
        line.clear();
        if s.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = v.parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.eq_ignore_ascii_case("chunked");
            } else if k.eq_ignore_ascii_case("content-encoding") {
                gzipped = v.eq_ignore_ascii_case("gzip");
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            s.read_line(&mut line).await?;
            let size = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if s.read_line(&mut line).await? == 0 || line == "\r\n" {
                        break;
                    }
                }
                break;
            }
            let at = body.len();
            body.resize(at + size, 0);
            s.read_exact(&mut body[at..]).await?;
            let mut crlf = [0; 2];
            s.read_exact(&mut crlf).await?;
        }
    } else {
        body = vec![0; length.ok_or(std::io::ErrorKind::InvalidData)?];
        s.read_exact(&mut body).await?;
    }
    Ok(Got {
        status,
        body,
        gzip: gzipped,
    })
}

/// What the clients poll: the service's address, the job, its collectors.
struct Polled {
    addr: std::net::SocketAddr,
    job: String,
    collectors: Vec<String>,
}

/// Wait (up to 10 minutes) until `addr` serves a job with targets on at least one collector;
/// the job (the first `/jobs` lists unless named) and its collectors.
async fn discover(addr: std::net::SocketAddr, job: Option<&str>) -> Polled {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Some(p) = try_discover(addr, job).await {
            return p;
        }
        if Instant::now() > deadline {
            eprintln!("ta-loadtest: {addr} served no targets within 10 minutes");
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn try_discover(addr: std::net::SocketAddr, job: Option<&str>) -> Option<Polled> {
    let mut s = BufReader::new(tokio::net::TcpStream::connect(addr).await.ok()?);
    let jobs = get(&mut s, "/jobs", false).await.ok()?;
    let jobs: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&jobs.body).ok()?;
    let job = match job {
        Some(j) => jobs.contains_key(j).then(|| j.to_owned())?,
        None => jobs.keys().next()?.clone(),
    };
    // The per-collector listing names the collectors (the Go allocator's too).
    let path = format!(
        "/jobs/{}/targets",
        allocator_service::plain_get::percent_encode(&job)
    );
    let all = get(&mut s, &path, false).await.ok()?;
    let all: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&all.body).ok()?;
    let collectors: Vec<String> = all.keys().cloned().collect();
    let assigned = all
        .values()
        .any(|c| c["targets"].as_array().is_some_and(|t| !t.is_empty()));
    (assigned && !collectors.is_empty()).then_some(Polled {
        addr,
        job,
        collectors,
    })
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let a = args();
    if let Some(address) = &a.address {
        let addr = tokio::net::lookup_host(address.as_str())
            .await
            .ok()
            .and_then(|mut it| it.next())
            .unwrap_or_else(|| {
                eprintln!("ta-loadtest: cannot resolve {address}");
                std::process::exit(2)
            });
        let polled = discover(addr, a.job.as_deref()).await;
        let ok = load(&a, &polled, None).await;
        std::process::exit(if ok { 0 } else { 1 });
    }
    let dir = std::env::temp_dir().join(format!("ta-loadtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pods = dir.join("pods.json");
    write_targets(&pods, a.targets, 0);
    let collectors: Vec<String> = (0..a.collectors)
        .map(|i| format!("otel-collector-{i}"))
        .collect();
    let yaml = format!(
        "collectors: {collectors:?}\nconfig:\n  scrape_configs:\n    - job_name: pods\n      file_sd_configs: [{{files: [{}]}}]\n",
        pods.display()
    );
    let cfg = allocator_service::parse(&yaml, &dir).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(allocator_service::serve(cfg, listener, None, None, async {
        let _ = stop_rx.await;
    }));
    // Wait until the first allocation is served.
    let polled = discover(addr, Some("pods")).await;
    let running = Arc::new(AtomicBool::new(true));
    let churner = {
        let running = running.clone();
        let pods = pods.clone();
        let n = a.targets;
        tokio::task::spawn_blocking(move || {
            let mut generation = 1;
            while running.load(Ordering::Relaxed) {
                write_targets(&pods, n, generation);
                generation += 1;
                std::thread::sleep(Duration::from_millis(250));
            }
            generation - 1
        })
    };
    let ok = load(&a, &polled, Some((running, churner))).await;
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    if !ok {
        std::process::exit(1);
    }
}

/// The churning writer of the in-process run: its run flag, and its task returning how many
/// rewrites it made.
type Churner = (Arc<AtomicBool>, tokio::task::JoinHandle<usize>);

/// Run the clients for the configured time and print the numbers; false on any error.
async fn load(a: &Args, p: &Polled, churner: Option<Churner>) -> bool {
    let errors = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.seconds);
    let mut clients = Vec::new();
    for c in 0..a.clients {
        let (errors, bytes) = (errors.clone(), bytes.clone());
        let path = format!(
            "/jobs/{}/targets?collector_id={}",
            allocator_service::plain_get::percent_encode(&p.job),
            allocator_service::plain_get::percent_encode(&p.collectors[c % p.collectors.len()])
        );
        let (addr, gzip) = (p.addr, a.gzip);
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            let mut conn = BufReader::new(tokio::net::TcpStream::connect(addr).await.unwrap());
            while Instant::now() < deadline {
                let t = Instant::now();
                let answer = get(&mut conn, &path, gzip).await;
                let elapsed = t.elapsed();
                n += 1;
                // Every answer must be a JSON array (gzip: a gzip stream); every 16th is
                // decoded and parsed in full (all of them would make the clients, not the
                // service, the bottleneck).
                let valid = |got: &Got| {
                    let framed = if got.gzip {
                        got.body.starts_with(&[0x1f, 0x8b])
                    } else {
                        got.body.first() == Some(&b'[') && got.body.last() == Some(&b']')
                    };
                    framed
                        && (n % 16 != 0
                            || got.decoded().is_ok_and(|b| {
                                serde_json::from_slice::<Vec<serde_json::Value>>(&b).is_ok()
                            }))
                };
                match answer {
                    Ok(got) if got.status == 200 && valid(&got) => {
                        latencies.push(elapsed);
                        bytes.fetch_add(got.body.len() as u64, Ordering::Relaxed);
                    }
                    other => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!(
                            "error: {:?}",
                            other
                                .map(|g| (g.status, String::from_utf8_lossy(&g.body).into_owned()))
                        );
                        conn = BufReader::new(tokio::net::TcpStream::connect(addr).await.unwrap());
                    }
                }
            }
            latencies
        }));
    }
    let mut all: Vec<Duration> = Vec::new();
    for c in clients {
        all.extend(c.await.unwrap());
    }
    let elapsed = start.elapsed();
    let rewrites = match churner {
        Some((running, task)) => {
            running.store(false, Ordering::Relaxed);
            format!(", {} file_sd rewrites (1% churn each)", task.await.unwrap())
        }
        None => String::new(),
    };
    all.sort();
    let pct = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let errors = errors.load(Ordering::Relaxed);
    let bytes = bytes.load(Ordering::Relaxed);
    println!(
        "{} targets, {} collectors, {} clients, {:.1} s{rewrites}{}: {} requests, {:.0} req/s, {:.0} MB/s ({:.0} bytes/answer), p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, errors {}",
        if a.address.is_some() { format!("{} job {:?}", p.addr, p.job) } else { a.targets.to_string() },
        p.collectors.len(),
        a.clients,
        elapsed.as_secs_f64(),
        if a.gzip { ", gzip" } else { "" },
        all.len(),
        all.len() as f64 / elapsed.as_secs_f64(),
        bytes as f64 / elapsed.as_secs_f64() / 1e6,
        bytes as f64 / all.len().max(1) as f64,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        errors
    );
    errors == 0 && !all.is_empty()
}
