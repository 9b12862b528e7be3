//! What a scenario's text compiles to, below the protocols that use it: `template`s rendered
//! per request, `data` sets and their cursors, each user's `random` stream, and the `reply`
//! rules (extract, check) that judge what arrived, whatever the kind. What the text must be
//! is the api's to say: compiling takes its parsed values (`stampede_api::scenario`,
//! `validate::fields`) and reports its `FieldError`s, never a check of its own.

pub mod data;
pub mod random;
pub mod reply;
pub mod template;

/// A substring finder that owns its needle.
pub fn finder(needle: &[u8]) -> memchr::memmem::Finder<'static> {
    memchr::memmem::Finder::new(needle).into_owned()
}
