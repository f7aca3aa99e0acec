//! Bounded load test on loopback: the service in-process with file discovery of many targets,
//! many clients polling `/jobs/<job>/targets?collector_id=<id>` over keep-alive connections (as
//! collectors' HTTP SD does) while a writer churns the file_sd file. Prints p50/p99 latency and
//! requests/s; exits 1 on any error (a non-200 answer, a body that is not a JSON array, a
//! dropped connection). Clients and service share the machine, so the numbers are a floor.
//!
//! `cargo run --release -p allocator-service --bin ta-loadtest -- [--targets N] [--collectors N]
//!  [--clients N] [--seconds S]`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

struct Args {
    targets: usize,
    collectors: usize,
    clients: usize,
    seconds: u64,
}

fn args() -> Args {
    let mut a = Args {
        targets: 20_000,
        collectors: 10,
        clients: 64,
        seconds: 10,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    for pair in v.chunks(2) {
        let n = pair.get(1).and_then(|x| x.parse().ok()).unwrap_or_else(|| {
            eprintln!(
                "usage: ta-loadtest [--targets N] [--collectors N] [--clients N] [--seconds S]"
            );
            std::process::exit(2)
        });
        match pair[0].as_str() {
            "--targets" => a.targets = n,
            "--collectors" => a.collectors = n,
            "--clients" => a.clients = n,
            "--seconds" => a.seconds = n as u64,
            other => {
                eprintln!("ta-loadtest: unknown argument {other}");
                std::process::exit(2)
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

/// One keep-alive GET; returns the status and body.
async fn get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    path: &str,
) -> std::io::Result<(u16, Vec<u8>)> {
    s.get_mut()
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: loadtest\r\n\r\n").as_bytes())
        .await?;
    let mut line = String::new();
    s.read_line(&mut line).await?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    let mut length = None;
    loop {
        line.clear();
        if s.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            }
        }
    }
    let mut body = vec![0; length.ok_or(std::io::ErrorKind::InvalidData)?];
    s.read_exact(&mut body).await?;
    Ok((status, body))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let a = args();
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
    loop {
        let mut s = BufReader::new(tokio::net::TcpStream::connect(addr).await.unwrap());
        if let Ok((200, body)) = get(&mut s, "/jobs").await {
            if body.len() > 2 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let running = Arc::new(AtomicBool::new(true));
    let errors = Arc::new(AtomicU64::new(0));
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
    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.seconds);
    let mut clients = Vec::new();
    for c in 0..a.clients {
        let errors = errors.clone();
        let path = format!(
            "/jobs/pods/targets?collector_id={}",
            collectors[c % collectors.len()]
        );
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            let mut conn = BufReader::new(tokio::net::TcpStream::connect(addr).await.unwrap());
            while Instant::now() < deadline {
                let t = Instant::now();
                let answer = get(&mut conn, &path).await;
                let elapsed = t.elapsed();
                n += 1;
                // Every answer must be a JSON array; every 16th is parsed in full (parsing all
                // of them would make the clients, not the service, the bottleneck).
                let valid = |body: &[u8]| {
                    body.first() == Some(&b'[')
                        && body.last() == Some(&b']')
                        && (n % 16 != 0
                            || serde_json::from_slice::<Vec<serde_json::Value>>(body).is_ok())
                };
                match answer {
                    Ok((200, body)) if valid(&body) => latencies.push(elapsed),
                    other => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!(
                            "error: {:?}",
                            other.map(|(s, b)| (s, String::from_utf8_lossy(&b).into_owned()))
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
    running.store(false, Ordering::Relaxed);
    let generations = churner.await.unwrap();
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let errors = errors.load(Ordering::Relaxed);
    println!(
        "{} targets, {} collectors, {} clients, {:.1} s, {} file_sd rewrites (1% churn each): {} requests, {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, errors {}",
        a.targets,
        a.collectors,
        a.clients,
        elapsed.as_secs_f64(),
        generations,
        all.len(),
        all.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        errors
    );
    let _ = std::fs::remove_dir_all(&dir);
    if errors > 0 || all.is_empty() {
        std::process::exit(1);
    }
}
