//! Error pages: a malformed list link (400) and a page that does not exist (404).
//! Rendered by the app so they look like the rest of it, with the right HTTP status
//! set on the server's response.

use leptos::prelude::*;
use leptos_meta::Title;

/// A page for an HTTP error `status`.
#[component]
pub fn ErrorPage(status: u16, title: &'static str, message: String) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        if let Ok(code) = http::StatusCode::from_u16(status) {
            response.set_status(code);
        }
    }
    view! {
        <Title text=format!("{status} {title} · Tether") />
        <section class="error-page" data-status=status.to_string()>
            <h1>{status} " · " {title}</h1>
            <p class="error-message">{message}</p>
            <p>
                <a href="/">"Go to your lists"</a>
            </p>
        </section>
    }
}

/// 404: nothing lives at this address.
#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <ErrorPage
            status=404
            title="Not found"
            message="There is no page at this address.".to_string()
        />
    }
}

/// 400: a list link whose UID is not a UID.
#[component]
pub fn BadListLink(uid: String) -> impl IntoView {
    let shown: String = uid.chars().take(80).collect();
    view! {
        <ErrorPage
            status=400
            title="Bad list link"
            message=format!(
                "\u{201c}{shown}\u{201d} is not a list id. A list link looks like /l/ followed by a UUID, e.g. /l/6f1c2a5e-0b7d-4c39-9a4e-2d8f5b1e7c90.",
            )
        />
    }
}
