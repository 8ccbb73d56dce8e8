//! huaxing (花型): tells whether a textile print is a copy of a registered one.
//!
//! The modules follow the data flow: an upload is decoded ([`decode`]), brought to a working
//! resolution and colour space ([`normalize`]), described by a list of extractors
//! ([`features`]), indexed ([`index`]) and stored ([`registry`]); [`search`] finds and scores
//! candidates, [`engine`] ties those stages together, and [`api`] and [`cli`] are the edges.

pub mod api;
pub mod cli;
pub mod decode;
pub mod engine;
pub mod error;
pub mod features;
pub mod index;
pub mod normalize;
pub mod registry;
pub mod search;

pub use engine::Engine;
pub use error::{Error, Result};
