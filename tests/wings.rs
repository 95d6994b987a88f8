//! The three wings stay clean (docs/ARCHITECTURE.md, "Three wings and the arrows
//! between them"): the sync module names no Leptos, axum, sqlx, tokio or web-sys;
//! the app writes no SQL; the server has no views; the server's feature (`ssr`)
//! pulls in none of the load generator's client crates. A source scan, so a
//! violation fails here with the file and line rather than surfacing later as a
//! wasm build that pulls in a server crate.

use std::{fs, path::Path};

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Lines of code (comments stripped) in `wing` that contain any of `forbidden`.
fn violations(wing: &str, forbidden: &[&str]) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(wing),
        &mut files,
    );
    let mut found = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for word in forbidden {
                if code.contains(word) {
                    found.push(format!(
                        "{}:{}: `{word}` in {}",
                        file.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn the_sync_module_names_no_framework_database_or_browser_crate() {
    let found = violations(
        "src/model",
        &[
            "leptos", "axum", "sqlx", "tokio", "web_sys", "js_sys", "gloo",
        ],
    );
    assert!(
        found.is_empty(),
        "src/model must stay pure (docs/ARCHITECTURE.md):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_app_writes_no_sql() {
    let found = violations(
        "src/app",
        &["sqlx", "SELECT ", "INSERT ", "UPDATE ", "DELETE FROM"],
    );
    assert!(
        found.is_empty(),
        "SQL belongs in src/server (docs/ARCHITECTURE.md):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_server_has_no_views() {
    let found = violations("src/server", &["view!", "#[component]"]);
    assert!(
        found.is_empty(),
        "views belong in src/app (docs/ARCHITECTURE.md):\n{}",
        found.join("\n")
    );
}

/// The crates named by one feature's list in Cargo.toml (`name = [ ... ]`).
fn feature_list(manifest: &str, feature: &str) -> String {
    let start = manifest
        .find(&format!("\n{feature} = ["))
        .unwrap_or_else(|| panic!("Cargo.toml has no feature `{feature}`"));
    let rest = &manifest[start..];
    rest[..rest.find(']').expect("the list closes")].to_string()
}

#[test]
fn the_server_links_no_load_generator_client() {
    let manifest =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let ssr = feature_list(&manifest, "ssr");
    let loadgen = feature_list(&manifest, "loadgen");
    // (clap is not among them: the server parses its own `--help` and `--version`.)
    for client in ["reqwest", "tokio-tungstenite", "hdrhistogram"] {
        assert!(
            !ssr.contains(client),
            "`{client}` belongs to the `loadgen` feature, not `ssr` (the server binary)"
        );
        assert!(loadgen.contains(client), "`loadgen` must enable `{client}`");
    }
}
