//! The standard model kinds of Tether's shared lists, one file per kind.
//!
//! [`standard_registry`] lists them; adding a kind is a new file here plus one
//! `register` line, and no change to the sync code.

mod list;
mod section;
mod todo;

pub use list::List;
pub use section::Section;
pub use todo::Todo;

use super::registry::Registry;

/// The registry of every standard kind (what [`super::registry()`] returns).
pub fn standard_registry() -> Registry {
    Registry::new()
        .register::<List>()
        .register::<Todo>()
        .register::<Section>()
}
