//! What starts the app in a page: the build's files (css, js, wasm), each named with
//! the build id, and the module script that runs the wasm — hydrating the server's
//! markup, or mounting the app on the offline shell page.
//!
//! Defined once here for the three places that need them: the server-rendered pages
//! ([`super::shell`]), the offline shell page ([`offline_shell`], served at
//! [`SHELL_PATH`]) and the service worker's list of what to keep ([`kept_files`],
//! filled into `/sw.js` by `server::shell`). A page asks for the files of its own
//! build only (`?v=<build>`), so a page never runs the js of one build with the
//! wasm of another; the server refuses a file of another build (docs/RELIABILITY.md,
//! "Offline").

use leptos::prelude::*;

/// The name cargo-leptos gives the bundle: `pkg/tether.{js,wasm,css}`.
pub const OUTPUT_NAME: &str = "tether";

/// Where the offline shell page is served.
pub const SHELL_PATH: &str = "/shell";

/// How the wasm takes over the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The server rendered the page: attach to its markup.
    Hydrate,
    /// The offline shell: render the app in the browser.
    Mount,
}

impl Entry {
    fn export(self) -> &'static str {
        match self {
            Entry::Hydrate => "hydrate",
            Entry::Mount => "mount",
        }
    }
}

/// A file of the bundle, as build `build` names it.
pub fn bundle_file(build: &str, extension: &str) -> String {
    format!("/pkg/{OUTPUT_NAME}.{extension}?v={build}")
}

/// The offline shell page of build `build`.
pub fn shell_url(build: &str) -> String {
    format!("{SHELL_PATH}?v={build}")
}

/// Everything the offline shell needs, for the service worker to keep.
pub fn kept_files(build: &str) -> Vec<String> {
    vec![
        shell_url(build),
        bundle_file(build, "js"),
        bundle_file(build, "wasm"),
        bundle_file(build, "css"),
        "/favicon.svg".to_string(),
    ]
}

/// The module script: loads this build's js and wasm, then hydrates or mounts.
fn boot_script(build: &str, entry: Entry) -> String {
    let js = serde_json::to_string(&bundle_file(build, "js")).unwrap_or_default();
    let wasm = serde_json::to_string(&bundle_file(build, "wasm")).unwrap_or_default();
    let export = entry.export();
    format!(
        "import init, {{ {export} }} from {js};\n\
         await init({{ module_or_path: {wasm} }});\n\
         {export}();"
    )
}

/// The head of a page: the build id, the stylesheet, hints to fetch the js and
/// wasm early, and the boot script (with this response's nonce).
#[component]
pub fn BootHead(build_id: String, entry: Entry) -> impl IntoView {
    let nonce = leptos::nonce::use_nonce();
    let build = build_id;
    view! {
        <meta name="tether-build" content=build.clone() />
        <link id="leptos" rel="stylesheet" href=bundle_file(&build, "css") />
        <link rel="modulepreload" href=bundle_file(&build, "js") />
        <link
            rel="preload"
            href=bundle_file(&build, "wasm")
            r#as="fetch"
            r#type="application/wasm"
            crossorigin=""
        />
        <script type="module" nonce=nonce>
            {boot_script(&build, entry)}
        </script>
    }
}

/// The offline shell page: no data, only what starts the app, which then renders
/// whatever the address names from this device's copies. The service worker answers
/// a page with it when the server cannot be reached.
pub fn offline_shell(build: String) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <title>"Tether"</title>
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <BootHead build_id=build entry=Entry::Mount />
            </head>
            <body>
                <p class="loading shell-loading">"Opening Tether from this device…"</p>
                <noscript>
                    <p>"Without a connection, Tether needs JavaScript to open your lists."</p>
                </noscript>
            </body>
        </html>
    }
}

/// The build the server is running (server only: it knows it from its site root).
#[cfg(feature = "ssr")]
pub fn current_build() -> String {
    use_context::<crate::server::AppState>()
        .map(|state| state.build.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_of_a_build_carry_its_id() {
        assert_eq!(bundle_file("abc", "wasm"), "/pkg/tether.wasm?v=abc");
        assert_eq!(shell_url("abc"), "/shell?v=abc");
        assert!(kept_files("abc")
            .iter()
            .filter(|f| f.starts_with("/pkg/") || f.starts_with(SHELL_PATH))
            .all(|f| f.ends_with("?v=abc")));
    }

    #[test]
    fn the_boot_script_starts_the_entry_with_this_builds_files() {
        let script = boot_script("abc", Entry::Mount);
        assert!(script.contains(r#"import init, { mount } from "/pkg/tether.js?v=abc";"#));
        assert!(script.contains(r#"module_or_path: "/pkg/tether.wasm?v=abc""#));
        assert!(script.ends_with("mount();"));
    }
}
