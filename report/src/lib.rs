//! stampede-report: how a run's results read, for people. The console's live line and
//! summary table, and `stampede report --html`'s self-contained page. Both render
//! `stampede_api::results` types and write nothing themselves: the runner and the operator
//! print or save what these return. `api` keeps the contract (types, wire protocol, plan);
//! presentation lives here.

pub mod console;
pub mod html;
