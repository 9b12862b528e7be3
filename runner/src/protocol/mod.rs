//! What users speak, one folder per connection kind, over the connection layer they share
//! (`net`: connecting from a source address, `tls`: rustls client settings).

pub mod http1;
pub mod http2;
pub mod net;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod websocket;
