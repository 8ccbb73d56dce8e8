//! huaxing (花型): tells whether a textile print is a copy of a registered one.
//!
//! The modules follow the data flow: an upload is decoded ([`decode`]), brought to a working
//! resolution and colour space ([`normalize`]), described by a list of extractors
//! ([`features`]), indexed ([`index`]) and stored ([`registry`]), every change recorded in the
//! signed evidence log ([`ledger`]); [`search`] finds and scores candidates, [`engine`] ties
//! those stages together, [`report`] renders evidence for people (in a [`lang`] of theirs), and [`api`], [`web`] (the
//! pages) and [`cli`] are the edges.

pub mod api;
pub mod cli;
pub mod decode;
pub mod engine;
pub mod error;
pub mod features;
pub mod index;
pub mod lang;
pub mod ledger;
pub mod normalize;
pub mod registry;
pub mod report;
pub mod search;
pub mod stats;
pub mod web;

pub use engine::Engine;
pub use error::{Error, Result};
