//! The foundation's server behaviour (issue 2): `/healthz` (200, and 503 once the
//! database is gone), migrations on a fresh file, `/new`, security headers, and a
//! graceful shutdown that closes live sockets and finishes promptly — in-process and
//! for the real binary on SIGTERM. A bad configuration stops the binary with a
//! message naming the key.

#![cfg(feature = "ssr")]

mod common;

use std::time::{Duration, Instant};

use common::{binary, config, within, Author, Live, TempDir, TestServer};
use tether::model::Uid;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn healthz_is_200_and_503_once_the_database_is_closed() {
    let server = TestServer::start().await;
    let api = &server.api;
    let response = api
        .http
        .get(format!("{}/healthz", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-content-type-options"],
        "nosniff",
        "security headers on every response"
    );
    let store = if common::on_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"status": "ok", "store": store, "database": "ok", "changes_feed": "ok"})
    );

    server.server.state.db.close().await;
    let (status, body) = (
        api.get_status("/healthz").await,
        api.http
            .get(format!("{}/healthz", api.base))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap(),
    );
    assert_eq!(status, 503);
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["database"], "unavailable");
    // Sync says so too, with its typed error: retry later.
    let mut author = Author::new(Uid::new());
    author.create_list("Nowhere");
    let refused = api.push(&author.request(10)).await.unwrap_err();
    refused.assert("unavailable", 503);
    let refused = api.pull(author.list(), 0, None).await.unwrap_err();
    refused.assert("unavailable", 503);
    server.stop().await;
}

#[tokio::test]
async fn a_fresh_database_file_is_created_and_migrated() {
    let dir = TempDir::new();
    let mut config = config(dir.path());
    // Directories that do not exist yet are created too.
    let file = dir.path().join("deep/er/fresh.db");
    config.database.url = format!("sqlite://{}", file.display());
    let server = TestServer::start_config(config).await;
    assert!(file.exists());
    assert!(server.dump().await.is_empty(), "migrated, and empty");
    let mut author = Author::new(Uid::new());
    author.create_list("First");
    author.flush(&server.api, 10).await;
    assert_eq!(
        server.dump().await.len(),
        3,
        "a list, its node, a client seq"
    );
    assert!(
        dir.path().join("deep/er/fresh.db-wal").exists(),
        "the database runs in WAL mode"
    );
    server.stop().await;
}

#[tokio::test]
async fn new_redirects_to_a_fresh_list() {
    let server = TestServer::start().await;
    let api = &server.api;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let response = api
            .http
            .get(format!("{}/new", api.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        let location = response.headers()["location"].to_str().unwrap().to_string();
        let uid = location.strip_prefix("/l/").expect("a list address");
        seen.push(Uid::parse(uid).expect("a v4 uid"));
    }
    assert_ne!(seen[0], seen[1], "a fresh list every time");
    server.stop().await;
}

/// Many list pages rendered at once all answer: reading the list's title for the
/// page's `<title>` once panicked now and then ("no Arena is active") and dropped
/// the response, 32 of 400 concurrent requests here; and while another server of
/// the process started, a few pages waited for their data forever (each server found
/// the route list again, holding back every resource of the process meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_pages_rendered_at_once_all_answer() {
    let server = TestServer::start().await;
    let api = &server.api;
    let pages = (0..300).map(|_| {
        let request = api.http.get(format!("{}/l/{}", api.base, Uid::new()));
        async move {
            let response = within("a page", request.send()).await.expect("an answer");
            let status = response.status();
            (
                status,
                within("its body", response.text())
                    .await
                    .unwrap_or_default(),
            )
        }
    });
    // Other servers of this process start meanwhile, as in a parallel test run.
    let answered = std::sync::atomic::AtomicBool::new(false);
    let pages = async {
        let answers = futures::future::join_all(pages).await;
        answered.store(true, std::sync::atomic::Ordering::SeqCst);
        answers
    };
    let others = async {
        while !answered.load(std::sync::atomic::Ordering::SeqCst) {
            TestServer::start().await.stop().await;
        }
    };
    let (answers, ()) = tokio::join!(pages, others);
    for (status, body) in answers {
        assert_eq!(status, 200);
        assert!(body.contains("<title>todos · Tether</title>"), "{body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn other_api_paths_and_methods_are_not_the_protocol() {
    let server = TestServer::start().await;
    let api = &server.api;
    for path in ["/api/push", "/api/pull", "/api/ping"] {
        assert_eq!(api.get_status(path).await, 405, "GET {path}");
    }
    let (status, body) = api.post_raw("/api/nope", "{}").await;
    assert_eq!(status, 404, "{body}");
    // The size limit holds there too, before anything looks at the path's meaning.
    let (status, body) = api.post_raw("/api/nope", "x".repeat(2 << 20)).await;
    assert_eq!(status, 413);
    assert_eq!(body["code"], "body_too_large");
    server.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_closes_live_sockets_promptly() {
    let server = TestServer::start().await;
    let addr = server.addr();
    let list = Uid::new();
    let (mut a, _, _) = Live::subscribe(addr, list, 0).await;
    let (mut b, _, _) = Live::subscribe(addr, list, 0).await;
    let started = Instant::now();
    let stopping = tokio::spawn(server.stop());
    for live in [&mut a, &mut b] {
        let close = live.expect_close().await.expect("a close frame");
        assert_eq!(close.code, CloseCode::Away);
        assert_eq!(close.reason.as_str(), "server shutting down");
    }
    within("shutdown", stopping).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
    // Nothing listens any more.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn the_binary_serves_and_exits_cleanly_on_sigterm() {
    let dir = TempDir::new();
    let port = binary::free_port();
    let mut child = binary::start(binary::command(dir.path(), port), port).await;
    // It serves the API, not just /healthz.
    let api = common::Api::new(([127, 0, 0, 1], port).into());
    let mut author = Author::new(Uid::new());
    author.create_list("From the binary");
    author.flush(&api, 10).await;
    let (mut live, caught_up, _) =
        Live::subscribe(([127, 0, 0, 1], port).into(), author.list(), 0).await;
    assert_eq!(caught_up.len(), 1);

    binary::signal(&child, "TERM");
    let close = live.expect_close().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Away);
    let (status, took) = binary::wait_exit(&mut child, Duration::from_secs(10)).await;
    let stderr = binary::stderr(&mut child);
    assert!(status.success(), "exit {status}: {stderr}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// `tether --help` lists every configuration key and `--version` says the version,
/// both without starting a server; any other argument is refused, not ignored.
#[tokio::test]
async fn the_binary_answers_help_and_version_and_refuses_other_arguments() {
    let dir = TempDir::new();
    let port = binary::free_port();
    let run = |args: &'static [&'static str]| {
        let mut command = binary::command(dir.path(), port);
        command.args(args).stdout(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap();
        async move {
            let (status, _) = binary::wait_exit(&mut child, Duration::from_secs(10)).await;
            let out = binary::stdout(&mut child);
            (status.code(), out, binary::stderr(&mut child))
        }
    };
    let (code, help, _) = run(&["--help"]).await;
    assert_eq!(code, Some(0), "{help}");
    for named in [
        "TETHER_DATABASE_URL",
        "database.url",
        "TETHER_MAX_OPS_PER_PUSH",
        "1..=100000",
        "TETHER_CONFIG",
    ] {
        assert!(help.contains(named), "{named} not in: {help}");
    }
    let (code, version, _) = run(&["--version"]).await;
    assert_eq!(code, Some(0));
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    let (code, _, refused) = run(&["--port", "80"]).await;
    assert_eq!(code, Some(2), "{refused}");
    assert!(refused.contains("--port"), "{refused}");
    // None of them served.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[tokio::test]
async fn a_bad_configuration_stops_the_binary_with_the_key_named() {
    let dir = TempDir::new();
    let port = binary::free_port();
    let cases: [(&str, &str, &str); 4] = [
        ("TETHER_MAX_OPS_PER_PUSH", "0", "TETHER_MAX_OPS_PER_PUSH"),
        ("TETHER_ADDR", "not an address", "TETHER_ADDR"),
        ("TETHER_DATABASE_URL", "mysql://x", "TETHER_DATABASE_URL"),
        ("TETHER_NO_SUCH_KEY", "1", "TETHER_NO_SUCH_KEY"),
    ];
    for (var, value, named) in cases {
        let mut command = binary::command(dir.path(), port);
        command.env(var, value);
        let mut child = command.spawn().unwrap();
        let (status, _) = binary::wait_exit(&mut child, Duration::from_secs(10)).await;
        let stderr = binary::stderr(&mut child);
        assert_eq!(status.code(), Some(2), "{var}={value}: {stderr}");
        assert!(stderr.contains(named), "{var}={value}: {stderr}");
    }
    // A key in Leptos.toml that does not exist, named by its path.
    std::fs::write(
        dir.path().join("Leptos.toml"),
        "[sync]\nmax_ops_per_pusj = 5\n",
    )
    .unwrap();
    let mut child = binary::command(dir.path(), port).spawn().unwrap();
    let (status, _) = binary::wait_exit(&mut child, Duration::from_secs(10)).await;
    let stderr = binary::stderr(&mut child);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("sync.max_ops_per_pusj"), "{stderr}");
    std::fs::remove_file(dir.path().join("Leptos.toml")).unwrap();

    // A database that cannot be opened (its directory is a file) fails at start.
    std::fs::write(dir.path().join("blocker"), "").unwrap();
    let mut command = binary::command(dir.path(), port);
    command.env(
        "TETHER_DATABASE_URL",
        format!("sqlite://{}", dir.path().join("blocker/t.db").display()),
    );
    let mut child = command.spawn().unwrap();
    let (status, _) = binary::wait_exit(&mut child, Duration::from_secs(10)).await;
    let stderr = binary::stderr(&mut child);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("database"), "{stderr}");
}

#[tokio::test]
async fn the_bundle_goes_out_precompressed_to_browsers_that_take_brotli() {
    // `make build-release` writes tether.wasm.br beside tether.wasm; a browser that
    // accepts br gets those bytes as they are, others get gzip made on the fly,
    // and a client that accepts nothing gets the file itself.
    let dir = TempDir::new();
    let pkg = dir.path().join("site/pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let wasm: Vec<u8> = (0..64 * 1024).map(|i| (i % 7) as u8).collect();
    let brotli = b"stands in for the brotli-11 bytes".to_vec();
    std::fs::write(pkg.join("tether.wasm"), &wasm).unwrap();
    std::fs::write(pkg.join("tether.wasm.br"), &brotli).unwrap();
    let server = TestServer::start_config(config(dir.path())).await;
    let url = format!("http://{}/pkg/tether.wasm", server.addr());
    let http = reqwest::Client::new();
    let fetch = |accept: &'static str| {
        let request = http.get(&url).header("accept-encoding", accept);
        async move {
            let response = within("a static file", request.send()).await.unwrap();
            assert_eq!(response.status(), 200);
            let encoding = response
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap().to_string());
            (encoding, response.bytes().await.unwrap().to_vec())
        }
    };

    let (encoding, body) = fetch("gzip, deflate, br, zstd").await;
    assert_eq!(encoding.as_deref(), Some("br"));
    assert_eq!(body, brotli, "the precompressed file, not compressed again");

    let (encoding, body) = fetch("gzip").await;
    assert_eq!(encoding.as_deref(), Some("gzip"));
    assert!(body.len() < wasm.len() / 10, "compressed on the fly");

    let (encoding, body) = fetch("identity").await;
    assert_eq!(encoding, None);
    assert_eq!(body, wasm);
    server.stop().await;
}

/// The figures `GET /metrics` must show after a push and with a live subscriber,
/// in the Prometheus text format.
#[tokio::test]
async fn metrics_show_pushes_latency_subscribers_and_the_pool() {
    let server = TestServer::start().await;
    let mut author = Author::new(Uid::new());
    author.create_list("Counted");
    author.flush(&server.api, 10).await;
    let (_live, _, _) = Live::subscribe(server.addr(), author.list(), 0).await;
    let response = within(
        "GET /metrics",
        server
            .api
            .http
            .get(format!("{}/metrics", server.api.base))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    let value = |line_start: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_else(|| panic!("no {line_start} in:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("tether_pushes_total{result=\"ok\"}") >= 1.0);
    assert!(value("tether_ops_total{result=\"accepted\"}") >= 1.0);
    assert!(value("tether_push_duration_seconds_count") >= 1.0);
    assert!(text.contains("tether_push_duration_seconds_bucket{le=\"0.005\"}"));
    assert!(value("tether_live_subscribers") >= 1.0);
    assert!(value("tether_db_pool_connections{state=\"open\"}") >= 1.0);
    server.stop().await;
}
