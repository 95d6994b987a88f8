//! Long lists render what is on screen.
//!
//! Past [`WINDOW_AFTER`] shown rows, a list keeps in the DOM only the rows in and
//! near the viewport ([`OVERSCAN_PX`] above and below) and pads itself above and
//! below by the height of the rows it leaves out, so the scroll bar, the page's
//! height and the scroll position are those of the whole list. A shorter list renders
//! every row and no padding, exactly as before.
//!
//! The server renders the first [`FIRST_SCREEN`] rows and the padding for the rest
//! (at [`ROW_PX`] a row); the browser hydrates that same first frame, then follows
//! the page's scrolling and resizing, measuring the rows it renders to keep the
//! padding right. Which rows to render is [`span_for`], a pure function of the
//! list's position in the viewport.

use leptos::{html::Ul, prelude::*};

use crate::model::Uid;

/// Lists showing more rows than this render only what is near the viewport.
pub const WINDOW_AFTER: usize = 200;

/// Rows rendered before the browser has measured anything: on the server, and in
/// the first frame it hydrates.
pub const FIRST_SCREEN: usize = 40;

/// A row's height until rows are measured (a TodoMVC item: 58.8 px + 1 px border).
pub const ROW_PX: f64 = 60.0;

/// Rows are kept rendered this far above and below the viewport.
pub const OVERSCAN_PX: f64 = 900.0;

/// Rows `start..end` of the shown rows are rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    /// `end` of a span that reaches the last row, however many rows there are.
    pub const TO_END: usize = usize::MAX;

    const FIRST: Span = Span {
        start: 0,
        end: FIRST_SCREEN,
    };

    fn clamped(self, total: usize) -> Span {
        let end = self.end.min(total);
        Span {
            start: self.start.min(end),
            end,
        }
    }
}

/// The rows to render of `total` rows `row_px` high each, in a list whose top is
/// `list_top_px` below the viewport's top (negative once scrolled past) in a
/// viewport `viewport_px` high.
pub fn span_for(total: usize, row_px: f64, list_top_px: f64, viewport_px: f64) -> Span {
    if total <= WINDOW_AFTER {
        return Span {
            start: 0,
            end: total,
        };
    }
    let row_px = row_px.max(1.0);
    let first = ((-list_top_px - OVERSCAN_PX) / row_px).floor().max(0.0) as usize;
    let last = ((viewport_px - list_top_px + OVERSCAN_PX) / row_px)
        .ceil()
        .max(0.0) as usize;
    let start = first.min(total - 1);
    // A span reaching the last row follows the end: a row added there (the new
    // item, at the bottom of the screen) is rendered at once.
    let end = if last >= total {
        Span::TO_END
    } else {
        last.max(start + 1)
    };
    Span { start, end }
}

/// The window over one list's shown rows.
#[derive(Clone, Copy)]
pub struct RowWindow {
    span: RwSignal<Span>,
    row_px: RwSignal<f64>,
    rows: Memo<Vec<Uid>>,
    list: NodeRef<Ul>,
}

impl RowWindow {
    /// A window over `rows`, following the page once mounted (browser only).
    pub fn new(rows: Memo<Vec<Uid>>) -> RowWindow {
        let window = RowWindow {
            span: RwSignal::new(Span::FIRST),
            row_px: RwSignal::new(ROW_PX),
            rows,
            list: NodeRef::new(),
        };
        window.follow_page();
        window
    }

    /// The `<ul>` the rows are rendered in.
    pub fn list(&self) -> NodeRef<Ul> {
        self.list
    }

    fn windowed(&self) -> bool {
        self.rows.with(Vec::len) > WINDOW_AFTER
    }

    /// The rows to render now (tracked).
    pub fn rendered(&self) -> Vec<Uid> {
        self.rows.with(|rows| {
            if rows.len() <= WINDOW_AFTER {
                return rows.clone();
            }
            let Span { start, end } = self.span.get().clamped(rows.len());
            rows[start..end].to_vec()
        })
    }

    /// The padding standing for the rows above the rendered ones (`None` unwindowed).
    pub fn pad_top(&self) -> Option<String> {
        self.windowed().then(|| {
            let span = self.span.get().clamped(self.rows.with(Vec::len));
            px(span.start, self.row_px.get())
        })
    }

    /// The padding standing for the rows below the rendered ones (`None` unwindowed).
    pub fn pad_bottom(&self) -> Option<String> {
        self.windowed().then(|| {
            let total = self.rows.with(Vec::len);
            let span = self.span.get().clamped(total);
            px(total - span.end, self.row_px.get())
        })
    }

    /// Recomputes the span on scroll and resize, and after the rows or the span
    /// changed (once the DOM shows them). In the browser only: the server renders
    /// the first screen.
    fn follow_page(self) {
        #[cfg(feature = "hydrate")]
        self.follow_in_browser();
    }
}

#[cfg(feature = "hydrate")]
impl RowWindow {
    fn follow_in_browser(self) {
        Effect::new(move |_| {
            self.rows.track();
            self.span.track();
            request_animation_frame(move || self.recompute());
        });
        Effect::new(move |_| {
            let scroll = window_event_listener(leptos::ev::scroll, move |_| self.recompute());
            let resize = window_event_listener(leptos::ev::resize, move |_| self.recompute());
            on_cleanup(move || {
                scroll.remove();
                resize.remove();
            });
        });
    }

    /// Measures the rendered rows and the list's place in the viewport, and moves
    /// the span if the rows to render changed.
    fn recompute(self) {
        let Some(Some(list)) = self.list.try_get_untracked() else {
            return;
        };
        let Some(total) = self.rows.try_with_untracked(Vec::len) else {
            return;
        };
        if total <= WINDOW_AFTER {
            return;
        }
        self.measure(&list, total);
        let top = list.get_bounding_client_rect().top();
        let viewport = web_sys::window()
            .and_then(|w| w.inner_height().ok())
            .and_then(|h| h.as_f64())
            .unwrap_or(800.0);
        let span = span_for(total, self.row_px.get_untracked(), top, viewport);
        if self.span.get_untracked() != span {
            self.span.set(span);
        }
    }

    /// Updates the row height from the rows rendered now (their average). Even a
    /// small error adds up over thousands of rows, so the padding follows the
    /// measured height to a hundredth of a pixel.
    fn measure(self, list: &web_sys::HtmlUListElement, total: usize) {
        let rendered = list.child_element_count() as usize;
        if rendered == 0 {
            return;
        }
        let row_px = self.row_px.get_untracked();
        let span = self.span.get_untracked().clamped(total);
        let padding = (span.start + total - span.end) as f64 * row_px;
        let measured = (f64::from(list.offset_height()) - padding) / rendered as f64;
        if measured > 0.0 && (measured - row_px).abs() > 0.01 {
            self.row_px.set(measured);
        }
    }
}

fn px(rows: usize, row_px: f64) -> String {
    format!("{}px", (rows as f64 * row_px).round())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_list_renders_every_row() {
        assert_eq!(
            span_for(WINDOW_AFTER, 60.0, -5_000.0, 800.0),
            Span {
                start: 0,
                end: WINDOW_AFTER
            }
        );
    }

    #[test]
    fn a_long_list_renders_the_viewport_and_its_margins() {
        // Scrolled 6,000 px into the list: rows 100..113 are on screen.
        let span = span_for(10_000, 60.0, -6_000.0, 800.0);
        let margin = (OVERSCAN_PX / 60.0) as usize;
        assert_eq!(span.start, 100 - margin);
        assert_eq!(span.end, 114 + margin);
    }

    #[test]
    fn the_span_stays_inside_the_list() {
        assert_eq!(span_for(10_000, 60.0, 200.0, 800.0).start, 0);
        let bottom = span_for(10_000, 60.0, -10_000.0 * 60.0 + 300.0, 800.0);
        assert_eq!(bottom.end, Span::TO_END);
        assert_eq!(bottom.clamped(10_000).end, 10_000);
        assert!(bottom.start < 10_000 - 5);
        let past = span_for(10_000, 60.0, -1e9, 800.0);
        assert_eq!(
            past.clamped(10_000),
            Span {
                start: 9_999,
                end: 10_000
            }
        );
    }

    #[test]
    fn a_span_at_the_bottom_takes_in_rows_added_there() {
        let span = span_for(10_000, 60.0, -10_000.0 * 60.0 + 300.0, 800.0);
        assert_eq!(span.clamped(10_001).end, 10_001);
        let middle = span_for(10_000, 60.0, -6_000.0, 800.0);
        assert_eq!(middle.clamped(10_001), middle);
    }
}
