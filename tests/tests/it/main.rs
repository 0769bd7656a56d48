//! rulebox's end-to-end tests: one binary, a module per area.
mod api;
mod bench;
mod configs;
mod contract;
mod durability;
mod fuzz_corpus;
mod hostile;
mod listeners;
mod manifest;
mod parity;
mod pipeline;
mod rsyslog;
mod shippers;
mod signing;
mod syslog_ng;
