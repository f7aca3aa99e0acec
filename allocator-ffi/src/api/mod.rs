//! The exported functions. Each translates C arguments (through [`crate::handle`]), calls the
//! core, and translates back; no decision is made here.
//!
//! Safety contract shared by every `unsafe` export (the header repeats it): pointers are NULL
//! or valid for the documented number of elements during the call; a handle is one returned by
//! this library and not yet freed; an error object is not used by two threads at once.

mod changes;
mod convert;
mod errors;
mod hashing;
mod layout;
mod lifecycle;
mod queries;
mod snapshots;
mod views;

pub use changes::*;
pub use errors::*;
pub use hashing::*;
pub use layout::*;
pub use lifecycle::*;
pub use queries::*;
pub use snapshots::*;
pub use views::*;
