//! WebSocket (RFC 6455), written for memory per connection: the framing both ends share, a
//! user's client connection, and the server end `stampede target` speaks.

pub mod client;
pub mod frame;
pub mod server;
