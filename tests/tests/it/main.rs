//! rulebox's end-to-end tests: one binary, a module per area.
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
mod raw_formats;
mod rsyslog;
mod ruletest;
mod shippers;
mod signing;
mod syslog_ng;
mod tls;
