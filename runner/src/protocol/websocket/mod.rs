//! WebSocket (RFC 6455), written for memory per connection: the framing both ends share and
//! a user's client connection (the server end `stampede target` speaks is `target::ws`).

pub mod client;
pub mod frame;
pub mod kind;
pub use kind::WebSocket;
