//! What a text field tells the person typing in it: how much of its field's limit
//! the text uses, shown before the limit is reached, and why a save was refused.
//! A refused text stays in the field so nothing typed is lost.

use leptos::prelude::*;

use crate::model::ModelError;

/// The hint for `bytes` of text in a field of at most `limit` bytes: `None` while
/// the text is under three quarters of the limit, else the text to show and whether
/// the text is over the limit.
pub fn limit_hint(bytes: usize, limit: Option<usize>) -> Option<(String, bool)> {
    let limit = limit?;
    if bytes > limit {
        let over = bytes - limit;
        return Some((
            format!("{over} bytes too long: at most {limit} bytes"),
            true,
        ));
    }
    (bytes * 4 >= limit * 3).then(|| (format!("{} of {limit} bytes left", limit - bytes), false))
}

/// Why a typed text was not saved, for the person who typed it.
pub fn refusal(error: &ModelError) -> String {
    format!("Not saved: {error}. Your text is kept in the field.")
}

/// The state of one text field: its text's length (UTF-8 bytes) and the last
/// refusal, both cleared when the text changes.
#[derive(Clone, Copy)]
pub struct TypedText {
    pub bytes: RwSignal<usize>,
    pub refused: RwSignal<Option<String>>,
    pub limit: Option<usize>,
}

impl TypedText {
    pub fn new(limit: Option<usize>) -> TypedText {
        TypedText {
            bytes: RwSignal::new(0),
            refused: RwSignal::new(None),
            limit,
        }
    }

    /// The field's text is now `text`.
    pub fn typed(&self, text: &str) {
        self.bytes.set(text.trim().len());
        if self.refused.get_untracked().is_some() {
            self.refused.set(None);
        }
    }

    /// A save of the text was refused.
    pub fn refuse(&self, error: &ModelError) {
        self.refused.set(Some(refusal(error)));
    }

    /// The field was emptied or its text saved.
    pub fn clear(&self) {
        self.bytes.set(0);
        self.refused.set(None);
    }

    /// The limit hint and the refusal, under the field.
    pub fn hints(self) -> impl IntoView {
        let hint = move || limit_hint(self.bytes.get(), self.limit);
        view! {
            <Show when=move || hint().is_some()>
                <p class="limit-hint" class:over=move || hint().is_some_and(|(_, over)| over)>
                    {move || hint().map(|(text, _)| text).unwrap_or_default()}
                </p>
            </Show>
            <Show when=move || self.refused.get().is_some()>
                <p class="refused" role="alert">{move || self.refused.get().unwrap_or_default()}</p>
            </Show>
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_shows_from_three_quarters_of_the_limit() {
        assert_eq!(limit_hint(10, None), None);
        assert_eq!(limit_hint(767, Some(1024)), None);
        assert_eq!(
            limit_hint(768, Some(1024)),
            Some(("256 of 1024 bytes left".into(), false))
        );
        assert_eq!(
            limit_hint(1024, Some(1024)),
            Some(("0 of 1024 bytes left".into(), false))
        );
        assert_eq!(
            limit_hint(1030, Some(1024)),
            Some(("6 bytes too long: at most 1024 bytes".into(), true))
        );
    }
}
