//! What a scenario's text compiles to, below the protocols that use it: `template`s rendered
//! per request, `data` sets and their cursors, each user's `random` stream, and the `reply`
//! rules (extract, check) that judge what arrived, whatever the kind.

pub mod data;
pub mod random;
pub mod reply;
pub mod template;

/// A compile error with the path of the field at fault.
#[derive(Debug)]
pub struct CompileError {
    pub path: String,
    pub message: String,
}

/// Turns a message into a `CompileError` at `path`: `.map_err(at("spec.…"))`.
pub fn at(path: impl Into<String>) -> impl FnOnce(String) -> CompileError {
    let path = path.into();
    move |message| CompileError { path, message }
}

/// A JSONPath, compiled, or the error at `p`.
pub fn json_path(p: &str, src: &str) -> Result<serde_json_path::JsonPath, CompileError> {
    serde_json_path::JsonPath::parse(src).map_err(|e| at(p)(format!("not a JSONPath: {e}")))
}

/// A regular expression, compiled, or the error at `p`.
pub fn regex(p: &str, src: &str) -> Result<regex::bytes::Regex, CompileError> {
    regex::bytes::Regex::new(src).map_err(|e| at(p)(format!("not a regular expression: {e}")))
}

/// A substring finder that owns its needle.
pub fn finder(needle: &[u8]) -> memchr::memmem::Finder<'static> {
    memchr::memmem::Finder::new(needle).into_owned()
}
